//! Which HTTP proxy the job's two clients (the AWS SDK and the GitHub API
//! client) go through, decided once from the `http-proxy` setting and the
//! captured environment (pure: the clients build their connectors from the
//! [`ProxySettings`] it returns).
//!
//! The rules, as curl and the AWS SDK's own `from_env` read them:
//!
//! - The `http-proxy` setting, when given, is the proxy for every
//!   destination, `https://` and `http://` alike (as
//!   aws-actions/aws-cloudformation-github-deploy applies it), and wins over
//!   the variables.
//! - Else `HTTPS_PROXY` (or `https_proxy`) is the proxy for `https://`
//!   destinations and `HTTP_PROXY` (or `http_proxy`) for `http://` ones (the
//!   upper-case name first, as the SDK reads them). A variable without a
//!   scheme is an `http://` proxy, as curl reads it.
//! - `NO_PROXY` (or `no_proxy`) lists the hosts reached directly, in curl's
//!   syntax (`.example.com`, `10.0.0.0/8`, `*`), whichever way the proxy was
//!   set. The instance and container metadata addresses are always reached
//!   directly: they exist only on the runner's own host, and a proxy asked
//!   for them would answer with its own host's credentials.
//!
//! An unusable proxy URL is refused before any call (a deploy that ignores
//! the proxy it was given would fail later, or go around a firewall's
//! audit), naming the variable when it came from one. Credentials in a proxy
//! URL (`http://user:secret@proxy:3128`) are never shown: messages carry
//! [`redact`]ed URLs.

use std::fmt;

use hyper::Uri;

use crate::env::Environment;
use crate::refusal::{Refusal, Setting};

/// Where the proxy for one kind of destination came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxySource {
    /// The `http-proxy` setting.
    Setting,
    /// This environment variable.
    Variable(&'static str),
}

/// One proxy, validated: an `http://` or `https://` URL with a host.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// With its scheme and any credentials: what the clients connect with.
    url: String,
    pub source: ProxySource,
}

impl ProxyUrl {
    /// The URL with its credentials, for the clients only, never for a
    /// message.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The password in the URL, if any (to mask it in the log).
    pub fn password(&self) -> Option<&str> {
        let (userinfo, _) = split_userinfo(&self.url)?;
        userinfo.split_once(':').map(|(_, password)| password)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&redact(&self.url))
    }
}

// Debug shows the redacted URL too, so a `{:?}` of the settings can never
// leak a proxy password into a log.
impl fmt::Debug for ProxyUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ProxyUrl")
            .field("url", &redact(&self.url))
            .field("source", &self.source)
            .finish()
    }
}

/// The proxy for each kind of destination, and the hosts reached directly.
/// The default is no proxy at all: the clients keep their own connectors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// For `https://` destinations (AWS, api.github.com): a CONNECT tunnel
    /// through it, so TLS stays end to end.
    pub https: Option<ProxyUrl>,
    /// For `http://` destinations (an endpoint override such as a local
    /// emulator, GitHub Enterprise Server over http): the request goes to it
    /// in absolute form.
    pub http: Option<ProxyUrl>,
    /// `NO_PROXY` as written, when set.
    pub no_proxy: Option<String>,
}

/// Always reached directly, whatever `NO_PROXY` says: the link-local range
/// (EC2 instance metadata 169.254.169.254, ECS and EKS container
/// credentials 169.254.170.2 and .23) and the metadata service's IPv6
/// addresses. Through a proxy these would reach the proxy's host instead.
pub const ALWAYS_DIRECT: &str = "169.254.0.0/16,fd00:ec2::254,fd00:ec2::23";

impl ProxySettings {
    /// Whether any destination goes through a proxy.
    pub fn is_configured(&self) -> bool {
        self.https.is_some() || self.http.is_some()
    }

    /// The hosts reached directly, in curl's `NO_PROXY` syntax: the user's
    /// rules and [`ALWAYS_DIRECT`].
    pub fn bypass_rules(&self) -> String {
        match self.no_proxy.as_deref().map(str::trim) {
            Some(rules) if !rules.is_empty() => format!("{rules},{ALWAYS_DIRECT}"),
            _ => ALWAYS_DIRECT.to_string(),
        }
    }

    /// One line for the log saying which proxy is used, or `None` when there
    /// is none. Credentials are redacted.
    pub fn describe(&self) -> Option<String> {
        let origin = |url: &ProxyUrl| match url.source {
            ProxySource::Setting => "http-proxy".to_string(),
            ProxySource::Variable(name) => name.to_string(),
        };
        let through = match (&self.https, &self.http) {
            (Some(https), Some(http)) if https.url == http.url => {
                format!("through the proxy {https} (from {})", origin(https))
            }
            (Some(https), Some(http)) => format!(
                "https:// through the proxy {https} (from {}), http:// through {http} (from {})",
                origin(https),
                origin(http)
            ),
            (Some(https), None) => format!(
                "https:// through the proxy {https} (from {}), http:// directly",
                origin(https)
            ),
            (None, Some(http)) => format!(
                "http:// through the proxy {http} (from {}), https:// directly",
                origin(http)
            ),
            (None, None) => return None,
        };
        let direct = match self.no_proxy.as_deref().map(str::trim) {
            Some(rules) if !rules.is_empty() => {
                format!("NO_PROXY ({rules}) and the instance metadata addresses")
            }
            _ => "only the instance metadata addresses".to_string(),
        };
        Some(format!(
            "AWS and GitHub API calls go {through}; reached directly: {direct}"
        ))
    }
}

/// The proxy settings from the `http-proxy` setting (`input`, which wins
/// and applies to both schemes) and the proxy variables of `env`. An
/// unusable URL is refused, naming the variable it came from.
pub fn resolve_proxy(input: Option<&str>, env: &Environment) -> Result<ProxySettings, Refusal> {
    let no_proxy = first_set(env, &["NO_PROXY", "no_proxy"]).map(|(_, value)| value.to_string());
    if let Some(text) = input.map(str::trim).filter(|text| !text.is_empty()) {
        let url = proxy_url(text, ProxySource::Setting)?;
        return Ok(ProxySettings {
            https: Some(url.clone()),
            http: Some(url),
            no_proxy,
        });
    }
    let from_variables = |names: &[&'static str]| {
        first_set(env, names)
            .map(|(name, value)| proxy_url(value.trim(), ProxySource::Variable(name)))
            .transpose()
    };
    Ok(ProxySettings {
        https: from_variables(&["HTTPS_PROXY", "https_proxy"])?,
        http: from_variables(&["HTTP_PROXY", "http_proxy"])?,
        no_proxy,
    })
}

/// The first of `names` that is set (and not empty: the runner and shells
/// leave unused variables empty).
fn first_set<'a>(env: &'a Environment, names: &[&'static str]) -> Option<(&'static str, &'a str)> {
    names
        .iter()
        .find_map(|name| env.get(name).map(|value| (*name, value)))
}

/// Validates one proxy URL: `http://` or `https://`, a host, an optional
/// port and credentials. A variable may leave the scheme out (curl reads
/// `proxy:3128` as `http://proxy:3128`); the setting is written for this
/// action, so it must say which.
fn proxy_url(text: &str, source: ProxySource) -> Result<ProxyUrl, Refusal> {
    let refuse = |problem: String| {
        let (problem, fix) = match source {
            ProxySource::Setting => (
                problem,
                "give the proxy as http://host:port (or https://host:port for a proxy reached over TLS), e.g. http://proxy.example.com:3128".to_string(),
            ),
            ProxySource::Variable(name) => (
                format!("comes from the environment variable {name}, which {problem}"),
                format!(
                    "set {name} to http://host:port (or https://host:port), or unset it; the `http-proxy` input, when given, is used instead of it"
                ),
            ),
        };
        Refusal::new(Setting::HttpProxy, &redact(text), problem, fix)
    };
    let url = match text.split_once("://") {
        Some((scheme, _)) => {
            if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
                return Err(refuse(format!(
                    "is not an http:// or https:// proxy URL (the scheme is `{scheme}`)"
                )));
            }
            text.to_string()
        }
        None if matches!(source, ProxySource::Variable(_)) => format!("http://{text}"),
        None => {
            return Err(refuse(
                "is not a proxy URL: it has no http:// or https:// scheme".to_string(),
            ));
        }
    };
    let parsed = url
        .parse::<Uri>()
        .map_err(|error| refuse(format!("is not a proxy URL ({error})")))?;
    if parsed.host().is_none_or(str::is_empty) {
        return Err(refuse("is not a proxy URL: it names no host".to_string()));
    }
    // A port that is not a number parses, and is then dropped for the
    // scheme's default: the calls would go to port 80 without a word.
    let authority = parsed
        .authority()
        .map_or("", |authority| authority.as_str());
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port);
    if let Some((_, port)) = host_port.rsplit_once(':')
        && !host_port.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(refuse(format!(
            "is not a proxy URL: its port `{port}` is not a port number"
        )));
    }
    Ok(ProxyUrl { url, source })
}

/// The userinfo (`user:password`) of a URL and the rest of its authority.
fn split_userinfo(url: &str) -> Option<(&str, &str)> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next()?;
    authority.rsplit_once('@')
}

/// `url` with the password of its credentials replaced by `***`, for
/// messages and the log.
pub fn redact(url: &str) -> String {
    let Some((userinfo, _)) = split_userinfo(url) else {
        return url.to_string();
    };
    let Some((user, _)) = userinfo.split_once(':') else {
        return url.to_string();
    };
    url.replacen(userinfo, &format!("{user}:***"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    /// One proxy as the clients get it, with its source.
    type Picked<'a> = Option<(&'a str, ProxySource)>;

    /// The setting, the variables, and what they give: (https, http).
    type Case<'a> = (
        Option<&'a str>,
        &'a [(&'a str, &'a str)],
        (Picked<'a>, Picked<'a>),
    );

    fn pick(url: &Option<ProxyUrl>) -> Picked<'_> {
        url.as_ref().map(|url| (url.as_str(), url.source))
    }

    #[test]
    fn the_setting_wins_and_covers_both_schemes_then_each_variable_its_own() {
        use ProxySource::{Setting as Input, Variable};
        let cases: &[Case] = &[
            (None, &[], (None, None)),
            // Empty is unset, for the setting and the variables alike.
            (Some("  "), &[("HTTPS_PROXY", "")], (None, None)),
            (
                Some("http://proxy.example.com:3128"),
                &[],
                (
                    Some(("http://proxy.example.com:3128", Input)),
                    Some(("http://proxy.example.com:3128", Input)),
                ),
            ),
            (
                Some(" https://proxy:8443 "),
                &[
                    ("HTTPS_PROXY", "http://other:1"),
                    ("HTTP_PROXY", "http://other:2"),
                ],
                (
                    Some(("https://proxy:8443", Input)),
                    Some(("https://proxy:8443", Input)),
                ),
            ),
            (
                None,
                &[("HTTPS_PROXY", "http://s:1"), ("HTTP_PROXY", "http://p:2")],
                (
                    Some(("http://s:1", Variable("HTTPS_PROXY"))),
                    Some(("http://p:2", Variable("HTTP_PROXY"))),
                ),
            ),
            (
                None,
                &[("https_proxy", "http://s:1")],
                (Some(("http://s:1", Variable("https_proxy"))), None),
            ),
            (
                None,
                &[("http_proxy", "http://p:2")],
                (None, Some(("http://p:2", Variable("http_proxy")))),
            ),
            // The upper-case name first, as the AWS SDK reads them.
            (
                None,
                &[
                    ("HTTPS_PROXY", "http://upper:1"),
                    ("https_proxy", "http://lower:1"),
                ],
                (Some(("http://upper:1", Variable("HTTPS_PROXY"))), None),
            ),
            // A variable without a scheme is an http:// proxy, as for curl.
            (
                None,
                &[("HTTPS_PROXY", "proxy:3128")],
                (Some(("http://proxy:3128", Variable("HTTPS_PROXY"))), None),
            ),
            (
                Some("http://[::1]:3128"),
                &[],
                (
                    Some(("http://[::1]:3128", Input)),
                    Some(("http://[::1]:3128", Input)),
                ),
            ),
            (
                None,
                &[("HTTP_PROXY", "http://user:p%40ss@proxy:3128/")],
                (
                    None,
                    Some(("http://user:p%40ss@proxy:3128/", Variable("HTTP_PROXY"))),
                ),
            ),
        ];
        for (input, variables, expected) in cases {
            let settings = resolve_proxy(*input, &env(variables))
                .unwrap_or_else(|refusal| panic!("{input:?} {variables:?}: {refusal:?}"));
            let found = (pick(&settings.https), pick(&settings.http));
            assert_eq!(found, *expected, "{input:?} {variables:?}");
            assert_eq!(
                settings.is_configured(),
                expected.0.is_some() || expected.1.is_some()
            );
        }
    }

    #[test]
    fn no_proxy_applies_to_the_setting_too_and_metadata_is_always_direct() {
        let settings = resolve_proxy(
            Some("http://proxy:3128"),
            &env(&[("NO_PROXY", "127.0.0.1,.internal"), ("no_proxy", "ignored")]),
        )
        .unwrap();
        assert_eq!(settings.no_proxy.as_deref(), Some("127.0.0.1,.internal"));
        assert_eq!(
            settings.bypass_rules(),
            format!("127.0.0.1,.internal,{ALWAYS_DIRECT}")
        );
        let lower = resolve_proxy(None, &env(&[("no_proxy", "localhost")])).unwrap();
        assert_eq!(lower.no_proxy.as_deref(), Some("localhost"));
        assert!(!lower.is_configured());
        assert_eq!(ProxySettings::default().bypass_rules(), ALWAYS_DIRECT);
        assert!(ALWAYS_DIRECT.contains("169.254.0.0/16"));
    }

    #[test]
    fn unusable_urls_are_refused_naming_where_they_came_from() {
        // (setting, variables, what the problem says)
        type Refused<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Refused] = &[
            (Some("ftp://x"), &[], "the scheme is `ftp`"),
            (Some("socks5://proxy:1080"), &[], "the scheme is `socks5`"),
            (
                Some("proxy.example.com:3128"),
                &[],
                "no http:// or https:// scheme",
            ),
            (Some("http://"), &[], "not a proxy URL"),
            (
                Some("http://proxy:port"),
                &[],
                "port `port` is not a port number",
            ),
            (Some("http://proxy:99999"), &[], "not a port number"),
            (Some("http://a proxy:3128"), &[], "not a proxy URL"),
            (
                None,
                &[("HTTPS_PROXY", "ftp://x")],
                "environment variable HTTPS_PROXY",
            ),
            (
                None,
                &[("http_proxy", "http://:3128")],
                "environment variable http_proxy",
            ),
        ];
        for (input, variables, expected) in cases {
            let refusal = resolve_proxy(*input, &env(variables))
                .expect_err(&format!("{input:?} {variables:?} must be refused"));
            assert_eq!(refusal.setting, Setting::HttpProxy);
            assert!(
                refusal.problem.contains(expected),
                "{input:?} {variables:?}: {refusal:?}"
            );
            assert!(!refusal.fix.is_empty());
        }
        // A variable's fix names it, and says the setting is used instead.
        let refusal = resolve_proxy(None, &env(&[("HTTPS_PROXY", "ftp://x")])).unwrap_err();
        assert!(refusal.fix.contains("set HTTPS_PROXY"), "{refusal:?}");
        assert!(refusal.fix.contains("`http-proxy`"), "{refusal:?}");
        // With the setting given, a broken variable is not read at all.
        let settings = resolve_proxy(
            Some("http://proxy:3128"),
            &env(&[("HTTPS_PROXY", "ftp://x")]),
        )
        .unwrap();
        assert_eq!(settings.https.unwrap().as_str(), "http://proxy:3128");
    }

    #[test]
    fn credentials_never_reach_a_message() {
        let refusal =
            resolve_proxy(Some("ftp://user:s3cret@proxy:21"), &Environment::default()).unwrap_err();
        assert_eq!(refusal.value, "ftp://user:***@proxy:21");
        assert!(!format!("{refusal:?}").contains("s3cret"));

        let settings = resolve_proxy(
            None,
            &env(&[("HTTPS_PROXY", "http://user:s3cret@proxy:3128")]),
        )
        .unwrap();
        let https = settings.https.clone().unwrap();
        assert_eq!(https.as_str(), "http://user:s3cret@proxy:3128");
        assert_eq!(https.password(), Some("s3cret"));
        assert_eq!(https.to_string(), "http://user:***@proxy:3128");
        assert!(!format!("{settings:?}").contains("s3cret"));
        let line = settings.describe().unwrap();
        assert!(!line.contains("s3cret"), "{line}");
        assert!(
            line.contains("http://user:***@proxy:3128 (from HTTPS_PROXY)"),
            "{line}"
        );
    }

    #[test]
    fn redact_hides_only_the_password() {
        let cases = [
            ("http://proxy:3128", "http://proxy:3128"),
            ("http://user@proxy:3128", "http://user@proxy:3128"),
            ("http://user:pw@proxy:3128/", "http://user:***@proxy:3128/"),
            ("user:pw@proxy:3128", "user:***@proxy:3128"),
            // An `@` in the path is not userinfo.
            ("http://proxy:3128/a@b", "http://proxy:3128/a@b"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact(url), expected, "{url}");
        }
    }

    #[test]
    fn the_log_line_says_which_proxy_for_which_scheme() {
        let both = resolve_proxy(
            Some("http://proxy:3128"),
            &env(&[("NO_PROXY", "10.0.0.0/8")]),
        )
        .unwrap()
        .describe()
        .unwrap();
        assert!(
            both.contains("through the proxy http://proxy:3128 (from http-proxy)"),
            "{both}"
        );
        assert!(both.contains("NO_PROXY (10.0.0.0/8)"), "{both}");
        let split = resolve_proxy(
            None,
            &env(&[("HTTPS_PROXY", "http://s:1"), ("HTTP_PROXY", "http://p:2")]),
        )
        .unwrap()
        .describe()
        .unwrap();
        assert!(
            split.contains("https:// through the proxy http://s:1 (from HTTPS_PROXY), http:// through http://p:2 (from HTTP_PROXY)"),
            "{split}"
        );
        assert_eq!(ProxySettings::default().describe(), None);
    }
}
