//! Proxies: the `http-proxy` input and HTTPS_PROXY / HTTP_PROXY / NO_PROXY,
//! through a forward proxy of our own (`util::ForwardProxy`) that records
//! what it relays. AWS calls and GitHub API calls go through it when told
//! to (in absolute form to the emulator's and the fake GitHub's `http://`
//! endpoints, tunnelled with CONNECT to `https://` ones) and around it for
//! NO_PROXY hosts; an unusable proxy is a bad input before any AWS call.

use std::collections::BTreeSet;
use std::net::TcpListener;

use crate::deploy::QUEUE_TEMPLATE;
use crate::github::{FakeGithub, with_github};
use crate::util::{ActionRun, Emulator, ForwardProxy, Workspace, unique_name};

/// `Proxy-Authorization` for `deployer:s3cret`.
const DEPLOYER_CREDENTIALS: &str = "Basic ZGVwbG95ZXI6czNjcmV0";

/// A stack deploy of the queue template, under a fresh name.
fn stack_run<'a>(ws: &'a Workspace, prefix: &str) -> ActionRun<'a> {
    ws.write("stack.yml", QUEUE_TEMPLATE);
    ActionRun::new(ws)
        .input("name", &unique_name(prefix))
        .input("template", "stack.yml")
        .input("parameter-overrides", "Env=proxy")
}

/// `host:port` of an `http://` or `https://` URL.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn the_http_proxy_input_carries_every_aws_call() {
    let emulator = Emulator::private();
    let proxy = ForwardProxy::start();
    let ws = Workspace::new();
    let run = stack_run(&ws, "proxied")
        .input(
            "http-proxy",
            &proxy.url_with_credentials("deployer", "s3cret"),
        )
        .run_against(&emulator);
    run.assert_code(0);
    let relayed = proxy.relayed();
    let aws = host_port(emulator.endpoint());
    // The endpoint is http://, so each call went to the proxy in absolute
    // form (no tunnel), for the emulator, with the proxy's credentials.
    assert!(!relayed.is_empty(), "{}", run.stdout);
    for request in &relayed {
        assert_ne!(request.method, "CONNECT", "{request:?}");
        assert_eq!(request.target, aws, "{request:?}");
        assert_eq!(
            request.proxy_authorization.as_deref(),
            Some(DEPLOYER_CREDENTIALS),
            "{request:?}"
        );
    }
    // Every call the emulator served came through the proxy: none went
    // around it.
    let served = emulator.requests();
    assert_eq!(
        relayed.len(),
        served.len(),
        "relayed {relayed:?}\nserved {served:?}"
    );
    // The log says which proxy, its password masked and never shown.
    let shown = proxy.url_with_credentials("deployer", "***");
    assert!(
        run.stdout
            .contains(&format!("through the proxy {shown} (from http-proxy)")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("::add-mask::s3cret"), "{}", run.stdout);
    for line in run
        .stdout
        .lines()
        .filter(|line| !line.starts_with("::add-mask::"))
    {
        assert!(
            !line.contains("s3cret"),
            "the proxy password leaked: {line}"
        );
    }
}

#[test]
fn the_proxy_variables_carry_aws_calls_by_scheme() {
    let aws = host_port(Emulator::shared().endpoint());
    let for_http = ForwardProxy::start();
    let for_https = ForwardProxy::start();
    let ws = Workspace::new();
    let run = stack_run(&ws, "proxyvars")
        .env("HTTP_PROXY", for_http.url())
        .env("HTTPS_PROXY", for_https.url())
        .run();
    run.assert_code(0);
    assert!(for_http.count() > 0, "{}", run.stdout);
    assert_eq!(for_http.targets(), BTreeSet::from([aws.clone()]));
    // The emulator's endpoint is http://: HTTPS_PROXY is for https://
    // destinations only.
    assert_eq!(for_https.count(), 0, "{:?}", for_https.relayed());
    assert!(
        run.stdout.contains(&format!(
            "through the proxy {} (from HTTPS_PROXY), http:// through {} (from HTTP_PROXY)",
            for_https.url(),
            for_http.url()
        )),
        "{}",
        run.stdout
    );

    // The lower-case spelling many tools set, alone.
    let lower = ForwardProxy::start();
    let ws = Workspace::new();
    let run = stack_run(&ws, "proxylower")
        .env("http_proxy", lower.url())
        .run();
    run.assert_code(0);
    assert!(lower.count() > 0, "{}", run.stdout);
    assert_eq!(lower.targets(), BTreeSet::from([aws]));
}

#[test]
fn no_proxy_hosts_are_reached_directly() {
    let proxy = ForwardProxy::start();
    // From the variables.
    let ws = Workspace::new();
    let run = stack_run(&ws, "noproxyvars")
        .env("HTTPS_PROXY", proxy.url())
        .env("HTTP_PROXY", proxy.url())
        .env("NO_PROXY", "localhost,127.0.0.1")
        .run();
    run.assert_code(0);
    assert_eq!(proxy.count(), 0, "{:?}", proxy.relayed());
    // NO_PROXY holds for the input too, here as a network.
    let ws = Workspace::new();
    let run = stack_run(&ws, "noproxyinput")
        .input("http-proxy", proxy.url())
        .env("no_proxy", "127.0.0.0/8")
        .run();
    run.assert_code(0);
    assert_eq!(proxy.count(), 0, "{:?}", proxy.relayed());
    assert!(
        run.stdout
            .contains("reached directly: NO_PROXY (127.0.0.0/8)"),
        "{}",
        run.stdout
    );
}

#[test]
fn github_api_calls_go_through_the_proxy_too() {
    let github = FakeGithub::start(204);
    let proxy = ForwardProxy::start();
    let ws = Workspace::new();
    let run = with_github(
        stack_run(&ws, "proxygh")
            .input("environment", "prod")
            .input("dispatch-workflows", "deploy-alb.yml")
            .input(
                "http-proxy",
                &proxy.url_with_credentials("deployer", "s3cret"),
            ),
        &github,
    )
    .run();
    run.assert_code(0);
    let to_github: Vec<_> = proxy
        .relayed()
        .into_iter()
        .filter(|request| request.target == host_port(&github.url))
        .collect();
    let relayed: Vec<(String, String)> = to_github
        .iter()
        .map(|request| (request.method.clone(), request.path.clone()))
        .collect();
    let served: Vec<(String, String)> = github
        .requests()
        .iter()
        .map(|request| (request.method.clone(), request.path.clone()))
        .collect();
    // The deployment, its two statuses and the dispatch: each through the
    // proxy, none around it.
    assert_eq!(served.len(), 4, "{served:?}");
    assert_eq!(relayed, served);
    assert!(
        to_github
            .iter()
            .all(|request| request.proxy_authorization.as_deref() == Some(DEPLOYER_CREDENTIALS)),
        "{to_github:?}"
    );
    // The token still reached GitHub.
    assert!(
        github
            .requests()
            .iter()
            .all(|request| request.authorization.ends_with("ghs_testtoken123")),
        "{:?}",
        github.requests()
    );
    // AWS went through it too: the input is for every call.
    let aws = host_port(Emulator::shared().endpoint());
    assert!(proxy.targets().contains(&aws), "{:?}", proxy.targets());
}

/// A TLS endpoint that is not one: it accepts each connection and closes
/// it at once, so a handshake through a tunnel to it fails quickly (a
/// plain-HTTP server would wait for a request line the TLS hello never
/// ends, until the client's connect timeout). Its `host:port`.
fn closing_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the closing endpoint");
    let address = listener.local_addr().expect("closing endpoint address");
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });
    address.to_string()
}

#[test]
fn aws_calls_to_an_https_endpoint_are_tunnelled() {
    let proxy = ForwardProxy::start();
    let endpoint = closing_endpoint();
    let ws = Workspace::new();
    // No TLS server can be trusted here, so the handshake inside the tunnel
    // fails and the run with it: what counts is that the SDK asked the
    // proxy for a tunnel to the endpoint's host and port, and sent nothing
    // around it.
    let run = stack_run(&ws, "tunnel")
        .env("AWS_ENDPOINT_URL", &format!("https://{endpoint}"))
        .input("http-proxy", proxy.url())
        .input("max-retries", "0")
        .run();
    run.assert_code(1);
    let relayed = proxy.relayed();
    assert!(!relayed.is_empty(), "{}", run.stdout);
    assert!(
        relayed
            .iter()
            .all(|request| request.method == "CONNECT" && request.target == endpoint),
        "{relayed:?}"
    );
}

#[test]
fn github_calls_to_an_https_api_are_tunnelled() {
    let proxy = ForwardProxy::start();
    let api = closing_endpoint();
    let ws = Workspace::new();
    // As above: the handshake fails inside the tunnel, so the deployment
    // cannot be recorded; the stack deploy before it went through the
    // proxy too.
    let run = stack_run(&ws, "tunnelgh")
        .env("GITHUB_API_URL", &format!("https://{api}"))
        .input("github-token", "ghs_testtoken123")
        .input("environment", "prod")
        .input(
            "http-proxy",
            &proxy.url_with_credentials("deployer", "s3cret"),
        )
        .run();
    run.assert_code(1);
    let to_github: Vec<_> = proxy
        .relayed()
        .into_iter()
        .filter(|request| request.target == api)
        .collect();
    assert!(!to_github.is_empty(), "{:?}", proxy.relayed());
    for request in &to_github {
        assert_eq!(request.method, "CONNECT", "{request:?}");
        assert_eq!(
            request.proxy_authorization.as_deref(),
            Some(DEPLOYER_CREDENTIALS),
            "{request:?}"
        );
    }
    // The error says which way the API was tried, without the password.
    let route = format!("through the proxy {}/", proxy.url());
    assert!(
        run.error_annotations()
            .iter()
            .any(|line| line.contains("could not reach the GitHub API") && line.contains(&route)),
        "{}",
        run.stdout
    );
}

#[test]
fn an_unusable_proxy_is_a_bad_input_before_any_aws_call() {
    let emulator = Emulator::private();
    let ws = Workspace::new();
    for (input, variables) in [
        (Some("ftp://x"), vec![]),
        (None, vec![("HTTPS_PROXY", "socks5://proxy:1080")]),
    ] {
        let mut run = stack_run(&ws, "badproxy").binary();
        if let Some(value) = input {
            run = run.input("http-proxy", value);
        }
        for (name, value) in &variables {
            run = run.env(name, value);
        }
        let run = run.run_against(&emulator);
        run.assert_code(2);
        assert!(
            run.error_annotations()
                .iter()
                .any(|line| line.contains("`http-proxy`")),
            "{}",
            run.stdout
        );
        if let Some((name, _)) = variables.first() {
            assert!(run.stdout.contains(name), "{}", run.stdout);
        }
    }
    assert_eq!(emulator.requests(), Vec::new());
}
