//! An HTTP forward proxy for the proxy tests, doing what a corporate proxy
//! (squid and the like) does for a client given HTTPS_PROXY or HTTP_PROXY:
//! it opens CONNECT tunnels (how `https://` destinations are reached) and
//! forwards absolute-form requests (`POST http://host:port/ HTTP/1.1`, how
//! `http://` ones are), and it records each request it relayed with its
//! target `host:port`, so a test can show the calls really went through it,
//! and where to.
//!
//! Unlike the fault proxy (`proxy.rs`), which stands in for the endpoint
//! itself, this one is configured as a proxy: the binary must choose to go
//! through it. Tokio, on a thread and runtime of its own, because the tests'
//! in-process runs each start and drop their own runtime and the proxy must
//! outlive them; `copy_bidirectional` keeps a tunnel a few lines.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One request the proxy relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// `CONNECT` for a tunnel, else the forwarded request's method.
    pub method: String,
    /// The `host:port` the proxy connected to for it.
    pub target: String,
    /// The forwarded request's path (sent on in origin form); empty for a
    /// tunnel, whose requests the proxy cannot see.
    pub path: String,
    /// The `Proxy-Authorization` header the client sent, if any.
    pub proxy_authorization: Option<String>,
}

/// The proxy; it serves until the test process exits.
pub struct ForwardProxy {
    url: String,
    log: Arc<Mutex<Vec<Relayed>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection task must not take every later call down.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ForwardProxy {
    pub fn start() -> ForwardProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the forward proxy");
        let address = listener.local_addr().expect("forward proxy address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener for tokio");
        let log = Arc::new(Mutex::new(Vec::new()));
        let serving = Arc::clone(&log);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the forward proxy's runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("the forward proxy listener");
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(serve(client, Arc::clone(&serving)));
                }
            });
        });
        ForwardProxy {
            url: format!("http://{address}"),
            log,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with credentials in it, as a user writes an authenticated
    /// proxy (`http://user:password@host:port`).
    pub fn url_with_credentials(&self, user: &str, password: &str) -> String {
        self.url
            .replacen("http://", &format!("http://{user}:{password}@"), 1)
    }

    /// Every request relayed so far, in order.
    pub fn relayed(&self) -> Vec<Relayed> {
        lock(&self.log).clone()
    }

    /// How many requests were relayed.
    pub fn count(&self) -> usize {
        lock(&self.log).len()
    }

    /// The `host:port` targets relayed to.
    pub fn targets(&self) -> BTreeSet<String> {
        lock(&self.log).iter().map(|r| r.target.clone()).collect()
    }
}

/// A request head: the request line and the header lines, as sent.
struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_head(reader: &mut BufReader<TcpStream>) -> Option<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let mut head = Head {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers: Vec::new(),
    };
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some(head);
        }
        let (name, value) = line.split_once(':')?;
        head.headers
            .push((name.trim().to_string(), value.trim().to_string()));
    }
}

/// The body that follows `head`, as sent (a chunked one with its chunk
/// framing, which is passed on as it is).
async fn read_body(reader: &mut BufReader<TcpStream>, head: &Head) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    if head
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).await.ok()?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers, then the blank line that ends the body.
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).await.ok()?;
                    body.extend_from_slice(line.as_bytes());
                    if line.trim().is_empty() {
                        return Some(body);
                    }
                }
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await.ok()?;
            body.extend_from_slice(&chunk);
        }
    } else if let Some(length) = head.header("content-length") {
        body.resize(length.parse().ok()?, 0);
        reader.read_exact(&mut body).await.ok()?;
    }
    Some(body)
}

async fn serve(client: TcpStream, log: Arc<Mutex<Vec<Relayed>>>) {
    let mut reader = BufReader::new(client);
    let Some(head) = read_head(&mut reader).await else {
        return;
    };
    let proxy_authorization = head.header("proxy-authorization").map(str::to_string);
    if head.method.eq_ignore_ascii_case("CONNECT") {
        lock(&log).push(Relayed {
            method: "CONNECT".into(),
            target: head.target.clone(),
            path: String::new(),
            proxy_authorization,
        });
        tunnel(reader, &head.target).await;
        return;
    }
    // Absolute form: http://host[:port]/path.
    let Some(rest) = head.target.strip_prefix("http://") else {
        let mut client = reader.into_inner();
        let _ = client
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let target = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let Some(body) = read_body(&mut reader, &head).await else {
        return;
    };
    lock(&log).push(Relayed {
        method: head.method.clone(),
        target: target.clone(),
        path: path.to_string(),
        proxy_authorization,
    });
    let mut client = reader.into_inner();
    let answer = match forward(&target, &head, path, &body).await {
        Some(answer) => answer,
        None => {
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = client.write_all(&answer).await;
    let _ = client.shutdown().await;
}

/// Sends the request on in origin form, without the proxy's own headers,
/// and returns the answer with `Connection: close`: one request per client
/// connection keeps the proxy from having to frame answers itself.
async fn forward(target: &str, head: &Head, path: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut upstream = TcpStream::connect(target).await.ok()?;
    let mut request = format!("{} {path} {}\r\n", head.method, head.version);
    for (name, value) in &head.headers {
        let hop_by_hop = ["proxy-authorization", "proxy-connection", "connection"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h));
        if !hop_by_hop {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    upstream.write_all(&bytes).await.ok()?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await.ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let mut rewritten: String = head
        .split("\r\n")
        .filter(|line| {
            !line
                .split_once(':')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        })
        .map(|line| format!("{line}\r\n"))
        .collect();
    rewritten.push_str("Connection: close\r\n\r\n");
    let mut out = rewritten.into_bytes();
    out.extend_from_slice(&answer[split + 4..]);
    Some(out)
}

/// Answers a CONNECT and relays bytes both ways until either side closes.
async fn tunnel(reader: BufReader<TcpStream>, target: &str) {
    // Bytes the client sent after the CONNECT head (a TLS hello sent
    // eagerly) are already in the reader's buffer: they go first.
    let early = reader.buffer().to_vec();
    let mut client = reader.into_inner();
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
        || upstream.write_all(&early).await.is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
