//! A fault-injecting HTTP proxy for the tests: it sits between the binary and
//! the emulator (`AWS_ENDPOINT_URL` points at it) and, by rate or by script,
//! answers an AWS call with what AWS sends on a bad day instead of passing it
//! on: throttling errors in each protocol's own shape, 500/503, a connection
//! reset (before the call reaches AWS, or after, so the answer is lost), and
//! latency. It keeps a log of every call with the fault it got, so tests can
//! show faults really happened and that calls were retried.
//!
//! Blocking std sockets and a thread per connection: the binary opens a
//! handful of connections, and the tests stay free of a second runtime.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

/// What the proxy can do to one call instead of passing it on untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// HTTP 400 `Throttling` (Query protocol: CloudFormation, ELBv2),
    /// `ThrottlingException` (JSON protocol: ECS, ECR), or EC2's 503
    /// `RequestLimitExceeded`.
    Throttle,
    /// HTTP 500 `InternalFailure` or 503 `ServiceUnavailable`, half each.
    ServerError,
    /// The connection is reset (RST) once the request is read; the call
    /// never reaches the emulator.
    Reset,
    /// The call reaches the emulator and takes effect, then the connection
    /// is reset before the answer is sent: the client cannot know it worked.
    LostResponse,
    /// The call is held 100 to 600 ms, then passed on.
    Latency,
    /// HTTP 500 with an empty body, as a load balancer or proxy in front of
    /// AWS may answer: nothing the SDK can parse.
    EmptyServerError,
    /// The request is read and never answered; the connection stays open.
    Hang,
}

/// One call through the proxy.
#[derive(Debug, Clone)]
pub struct ProxiedRequest {
    /// `cloudformation`, `ecs`, `ecr`, `elasticloadbalancing`, ...
    pub service: String,
    /// The API operation, e.g. `CreateChangeSet`.
    pub action: String,
    pub fault: Option<Fault>,
}

/// Calls per deck: a rate is honoured exactly within every run of this many
/// calls (0.2 = 4 faults in each 20), so a test can count on it.
const DECK_SIZE: usize = 20;

struct Plan {
    /// Each fault with how many calls of every [`DECK_SIZE`] get it; they add
    /// up to at most a deck.
    per_deck: Vec<(Fault, usize)>,
    /// What the next calls get, drawn from the end: the faults of one deck
    /// and `None` for the rest, shuffled. Dealing from a deck rather than
    /// tossing a coin per call keeps the count exact (a coin gave 5 faults in
    /// 54 calls at a 20 % rate once) and bounds a run of faults in a row to
    /// two decks' worth, which `max-retries` can be set above.
    deck: Vec<Option<Fault>>,
    /// Faults for the next calls of given operations, in order, each once.
    script: VecDeque<(String, Fault)>,
    /// Faults every call of an operation gets, for good.
    standing: Vec<(String, Fault)>,
    rng: StdRng,
}

struct Shared {
    upstream: String,
    plan: Mutex<Plan>,
    log: Mutex<Vec<ProxiedRequest>>,
}

/// The proxy; it serves until the test process exits.
pub struct FaultProxy {
    endpoint: String,
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take every later call down.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (an `http://host:port`
    /// endpoint). The random faults come from a seeded generator; the seed
    /// is printed so a failing run can be repeated with `ESD_FAULT_SEED`.
    pub fn start(upstream: &str) -> FaultProxy {
        let seed = std::env::var("ESD_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random::<u64>);
        eprintln!("fault proxy seed {seed} (set ESD_FAULT_SEED={seed} to repeat)");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let address = listener.local_addr().expect("fault proxy address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_start_matches("http://").to_string(),
            plan: Mutex::new(Plan {
                per_deck: Vec::new(),
                deck: Vec::new(),
                script: VecDeque::new(),
                standing: Vec::new(),
                rng: StdRng::seed_from_u64(seed),
            }),
            log: Mutex::new(Vec::new()),
        });
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = Arc::clone(&serving);
                std::thread::spawn(move || serve_connection(client, &shared));
            }
        });
        FaultProxy {
            endpoint: format!("http://{address}"),
            shared,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Injects each fault at its rate (0.2 = one call in five) at random
    /// places, exactly `rate × 20` times in every 20 calls; see
    /// [`FaultProxy::fewest_faults`].
    pub fn with_rates(self, rates: &[(Fault, f64)]) -> Self {
        let total: f64 = rates.iter().map(|(_, rate)| rate).sum();
        assert!(total <= 1.0, "fault rates add up to {total}, above 1");
        let per_deck = rates
            .iter()
            .map(|&(fault, rate)| {
                let calls = rate * DECK_SIZE as f64;
                assert!(
                    (calls - calls.round()).abs() < 1e-9,
                    "the rate of {fault:?} ({rate}) is not a whole number of calls in {DECK_SIZE}"
                );
                (fault, calls.round() as usize)
            })
            .collect();
        let mut plan = lock(&self.shared.plan);
        plan.per_deck = per_deck;
        plan.deck.clear();
        drop(plan);
        self
    }

    /// The fewest calls that `fault` is certain to have been injected into
    /// over `calls` rate-driven calls: its share of each whole deck dealt,
    /// plus what the partial last deck must hold even if every call it left
    /// undealt had been one of `fault`'s (a deploy of 19 calls under one in
    /// five has had at least 3 faults, not 0).
    pub fn fewest_faults(&self, fault: Fault, calls: usize) -> usize {
        let per_deck: usize = lock(&self.shared.plan)
            .per_deck
            .iter()
            .filter(|(f, _)| *f == fault)
            .map(|(_, count)| count)
            .sum();
        let dealt_of_last_deck = calls % DECK_SIZE;
        let certain_in_last_deck = if dealt_of_last_deck == 0 {
            0
        } else {
            per_deck.saturating_sub(DECK_SIZE - dealt_of_last_deck)
        };
        (calls / DECK_SIZE) * per_deck + certain_in_last_deck
    }

    /// The next call of `action` gets `fault` (scripted faults come first,
    /// in the order given, each used once).
    pub fn script(&self, action: &str, fault: Fault) {
        lock(&self.shared.plan)
            .script
            .push_back((action.to_string(), fault));
    }

    /// Every call of `action` gets `fault`, from now on.
    pub fn always(&self, action: &str, fault: Fault) {
        lock(&self.shared.plan)
            .standing
            .push((action.to_string(), fault));
    }

    /// Every call so far, in order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        lock(&self.shared.log).clone()
    }

    /// How many calls got `fault`.
    pub fn count(&self, fault: Fault) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.fault == Some(fault))
            .count()
    }
}

impl Shared {
    fn choose_fault(&self, action: &str) -> Option<Fault> {
        let mut plan = lock(&self.plan);
        if let Some((_, fault)) = plan.standing.iter().find(|(a, _)| a == action) {
            return Some(*fault);
        }
        if let Some(index) = plan.script.iter().position(|(a, _)| a == action) {
            return plan.script.remove(index).map(|(_, fault)| fault);
        }
        if plan.per_deck.is_empty() {
            return None;
        }
        if plan.deck.is_empty() {
            plan.deck = deal(&plan.per_deck);
            let Plan { deck, rng, .. } = &mut *plan;
            deck.shuffle(rng);
        }
        plan.deck.pop().flatten()
    }

    fn random_bool(&self) -> bool {
        lock(&self.plan).rng.random()
    }

    fn random_latency(&self) -> Duration {
        Duration::from_millis(lock(&self.plan).rng.random_range(100..=600))
    }
}

/// One deck, unshuffled: each fault its count, `None` for the rest of the
/// [`DECK_SIZE`] calls, which go through untouched.
fn deal(per_deck: &[(Fault, usize)]) -> Vec<Option<Fault>> {
    let mut deck: Vec<Option<Fault>> = per_deck
        .iter()
        .flat_map(|&(fault, count)| std::iter::repeat_n(Some(fault), count))
        .collect();
    deck.resize(DECK_SIZE, None);
    deck
}

/// One HTTP/1.1 message: start line, headers and body.
struct Message {
    start_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serialises with a Content-Length body and the given Connection header
    /// (bodies are always passed on whole, so chunking is never needed).
    fn to_bytes(&self, connection: &str) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start_line);
        for (name, value) in &self.headers {
            let hop_by_hop = ["connection", "content-length", "transfer-encoding"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h));
            if !hop_by_hop {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one message; `None` at a clean end of the connection.
fn read_message(reader: &mut impl BufRead) -> Option<Message> {
    let mut start_line = String::new();
    if reader.read_line(&mut start_line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut message = Message {
        start_line: start_line.trim_end().to_string(),
        headers,
        body: Vec::new(),
    };
    if message
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        message.body = read_chunked(reader)?;
    } else if let Some(length) = message.header("content-length") {
        let mut body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
        message.body = body;
    } else if message.start_line.starts_with("HTTP/") {
        // A response without a length ends with the connection.
        reader.read_to_end(&mut message.body).ok()?;
    }
    Some(message)
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line).ok()?;
        let size_text = size_line.trim().split(';').next()?;
        let size = usize::from_str_radix(size_text, 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// (service, operation) the way AWS routes a call: the credential scope of
/// the signature names the service; the JSON protocol's `X-Amz-Target` or
/// the Query protocol's `Action` parameter names the operation.
fn identify(request: &Message) -> (String, String) {
    let service = request
        .header("authorization")
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|credential| credential.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string();
    let action = match request.header("x-amz-target") {
        Some(target) => target.rsplit('.').next().unwrap_or(target).to_string(),
        None => String::from_utf8_lossy(&request.body)
            .split('&')
            .find_map(|pair| pair.strip_prefix("Action="))
            .unwrap_or_default()
            .to_string(),
    };
    (service, action)
}

/// The error answer AWS gives in the protocol the call used.
fn error_response(request: &Message, status: u16, code: &str, message: &str) -> Message {
    let reason = match status {
        400 => "Bad Request",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    if request.header("x-amz-target").is_some() {
        // JSON protocol (ECS, ECR): `__type` plus the error-type header.
        let json_code = match code {
            "Throttling" => "ThrottlingException",
            "ServiceUnavailable" => "ServiceUnavailableException",
            other => other,
        };
        Message {
            start_line: format!("HTTP/1.1 {status} {reason}"),
            headers: vec![
                ("Content-Type".into(), "application/x-amz-json-1.1".into()),
                ("x-amzn-ErrorType".into(), json_code.into()),
                ("x-amzn-RequestId".into(), "fault-proxy".into()),
            ],
            body: serde_json::json!({"__type": json_code, "message": message})
                .to_string()
                .into_bytes(),
        }
    } else if identify(request).0 == "ec2" {
        // EC2's own query shape: `<Response><Errors><Error>`, and its
        // throttling code with 503.
        let (status, reason, code) = match code {
            "Throttling" => (503, "Service Unavailable", "RequestLimitExceeded"),
            other => (status, reason, other),
        };
        Message {
            start_line: format!("HTTP/1.1 {status} {reason}"),
            headers: vec![("Content-Type".into(), "text/xml".into())],
            body: format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
            )
            .into_bytes(),
        }
    } else {
        let kind = if status < 500 { "Sender" } else { "Receiver" };
        Message {
            start_line: format!("HTTP/1.1 {status} {reason}"),
            headers: vec![("Content-Type".into(), "text/xml".into())],
            body: format!(
                "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
            )
            .into_bytes(),
        }
    }
}

/// Closes with RST rather than FIN, as a dropped load balancer connection
/// does: SO_LINGER with a zero timeout.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

fn forward(upstream: &str, request: &Message) -> Option<Message> {
    let mut stream = TcpStream::connect(upstream).ok()?;
    stream.write_all(&request.to_bytes("close")).ok()?;
    read_message(&mut BufReader::new(stream))
}

fn serve_connection(client: TcpStream, shared: &Shared) {
    let Ok(reading) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reading);
    let mut client = client;
    while let Some(request) = read_message(&mut reader) {
        let path = request.start_line.split(' ').nth(1).unwrap_or_default();
        let (service, action) = identify(&request);
        // The emulator's own control endpoints are the test's, not AWS's.
        let fault = if path.starts_with("/_emulator/") {
            None
        } else {
            shared.choose_fault(&action)
        };
        lock(&shared.log).push(ProxiedRequest {
            service,
            action,
            fault,
        });
        let response = match fault {
            None => forward(&shared.upstream, &request),
            Some(Fault::Latency) => {
                std::thread::sleep(shared.random_latency());
                forward(&shared.upstream, &request)
            }
            Some(Fault::Throttle) => {
                Some(error_response(&request, 400, "Throttling", "Rate exceeded"))
            }
            Some(Fault::ServerError) if shared.random_bool() => Some(error_response(
                &request,
                500,
                "InternalFailure",
                "We encountered an internal error. Please try again.",
            )),
            Some(Fault::ServerError) => Some(error_response(
                &request,
                503,
                "ServiceUnavailable",
                "Service is unavailable. Please try again.",
            )),
            Some(Fault::EmptyServerError) => Some(Message {
                start_line: "HTTP/1.1 500 Internal Server Error".into(),
                headers: Vec::new(),
                body: Vec::new(),
            }),
            Some(Fault::Hang) => {
                // Hold the connection open, unanswered, until the client
                // gives up and closes it.
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut reader, &mut sink);
                return;
            }
            Some(Fault::Reset) => {
                reset(client);
                return;
            }
            Some(Fault::LostResponse) => {
                let _ = forward(&shared.upstream, &request);
                reset(client);
                return;
            }
        };
        let Some(response) = response else {
            // The emulator is gone (test process ending): drop the client.
            return;
        };
        if client.write_all(&response.to_bytes("keep-alive")).is_err() {
            return;
        }
    }
}

/// The deck's arithmetic: what the rate tests count on.
#[test]
fn every_deck_deals_each_fault_its_exact_share() {
    let deck = deal(&[(Fault::Throttle, 4), (Fault::Reset, 1)]);
    assert_eq!(deck.len(), DECK_SIZE);
    let count = |fault| deck.iter().filter(|f| **f == Some(fault)).count();
    assert_eq!(count(Fault::Throttle), 4);
    assert_eq!(count(Fault::Reset), 1);
    assert_eq!(deck.iter().filter(|f| f.is_none()).count(), 15);

    // Dealt through the proxy's own chooser: every run of 20 calls holds
    // exactly its share, and never more than two decks' faults in a row.
    let proxy = FaultProxy::start("http://127.0.0.1:9").with_rates(&[(Fault::Throttle, 0.2)]);
    let dealt: Vec<_> = (0..200)
        .map(|_| proxy.shared.choose_fault("DescribeStacks"))
        .collect();
    for deck in dealt.chunks(DECK_SIZE) {
        assert_eq!(deck.iter().flatten().count(), 4, "{deck:?}");
    }
    let longest_run = dealt
        .split(Option::is_none)
        .map(<[_]>::len)
        .max()
        .unwrap_or(0);
    assert!(longest_run <= 8, "{longest_run} faults in a row");
    // 59 calls: two whole decks (8), and 19 of the third, which holds at
    // least 3 of its 4.
    assert_eq!(proxy.fewest_faults(Fault::Throttle, 59), 11);
    assert_eq!(proxy.fewest_faults(Fault::Throttle, 19), 3);
    assert_eq!(proxy.fewest_faults(Fault::Throttle, 16), 0);
    assert_eq!(proxy.fewest_faults(Fault::Throttle, 40), 8);
    assert_eq!(proxy.fewest_faults(Fault::Reset, 59), 0);

    // Rates become counts per deck: 0.05 is one call in each 20.
    let proxy = FaultProxy::start("http://127.0.0.1:9")
        .with_rates(&[(Fault::Throttle, 0.2), (Fault::Reset, 0.05)]);
    let dealt: Vec<_> = (0..100)
        .map(|_| proxy.shared.choose_fault("DescribeStacks"))
        .collect();
    for deck in dealt.chunks(DECK_SIZE) {
        let count = |fault| deck.iter().filter(|f| **f == Some(fault)).count();
        assert_eq!(
            (count(Fault::Throttle), count(Fault::Reset)),
            (4, 1),
            "{deck:?}"
        );
    }
    assert_eq!(proxy.fewest_faults(Fault::Reset, 59), 2);
}

/// The calls of `action` in `calls`.
pub fn count_of(calls: &[ProxiedRequest], action: &str) -> usize {
    calls.iter().filter(|c| c.action == action).count()
}

/// The calls after the first call of `action` (which must have been made).
pub fn calls_after<'a>(calls: &'a [ProxiedRequest], action: &str) -> &'a [ProxiedRequest] {
    let first = calls
        .iter()
        .position(|c| c.action == action)
        .unwrap_or_else(|| panic!("{action} was never called: {calls:?}"));
    &calls[first + 1..]
}
