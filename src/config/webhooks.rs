//! `[[webhooks]]`: URLs told about access-request state changes.

use serde::{Deserialize, Serialize};

use super::{ConfigProblem, OrgConfig, Secret};

/// A receiver of request notifications, signed with HMAC-SHA256 under `secret`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook's place in the audit log; renaming it starts it afresh.
    pub name: String,
    pub url: String,
    /// The key of the `Provost-Signature` header's HMAC; at least 16 characters.
    pub secret: Secret,
    /// The event types to send (`request.completed`, ...); all when empty.
    #[serde(default)]
    pub events: Vec<String>,
    /// The orgs whose requests to send; all when empty.
    #[serde(default)]
    pub orgs: Vec<String>,
    /// How long one attempt may take.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// How long a notification is retried (with backoff up to 5 minutes) before it is
    /// dead-lettered and the webhook moves on; later notifications wait for it until then.
    #[serde(default = "default_give_up")]
    pub give_up_after_minutes: u64,
    /// Allows `http://` to a host other than the loopback interface. Off: notifications say who
    /// got access to what, and the signature does not hide them.
    #[serde(default)]
    pub allow_plain_http: bool,
}

fn default_timeout() -> u64 {
    10
}

fn default_give_up() -> u64 {
    24 * 60
}

/// Checks names, URLs, secrets, event types and orgs.
pub(super) fn validate(
    webhooks: &[WebhookConfig],
    orgs: &[OrgConfig],
    problems: &mut Vec<ConfigProblem>,
) {
    let mut problem = |index: usize, key: &str, message: String| {
        problems.push(ConfigProblem {
            source: "configuration".to_owned(),
            key: format!("webhooks[{index}].{key}"),
            message,
        });
    };
    for (index, hook) in webhooks.iter().enumerate() {
        if !super::is_valid_name(&hook.name) {
            problem(
                index,
                "name",
                format!(
                    "`{}` must be lower-case letters, digits, `-` or `_`",
                    hook.name
                ),
            );
        }
        if webhooks[..index]
            .iter()
            .any(|other| other.name == hook.name)
        {
            problem(
                index,
                "name",
                format!("`{}` names two webhooks; names must be unique", hook.name),
            );
        }
        match url::Url::parse(&hook.url) {
            Ok(url) if url.scheme() == "https" => {}
            Ok(url) if url.scheme() == "http" && (hook.allow_plain_http || is_loopback(&url)) => {}
            Ok(url) if url.scheme() == "http" => problem(
                index,
                "url",
                format!(
                    "`{}` is plain http to a host other than this machine: use https, or set allow_plain_http = true if the network is private",
                    hook.url
                ),
            ),
            _ => problem(
                index,
                "url",
                format!(
                    "`{}` is not an http(s) URL such as https://hooks.example.com/provost",
                    hook.url
                ),
            ),
        }
        if hook.secret.expose().chars().count() < 16 {
            problem(
                index,
                "secret",
                "is shorter than 16 characters: use a long random value, e.g. `openssl rand -hex 32`"
                    .to_owned(),
            );
        }
        for event in &hook.events {
            if !crate::webhooks::EVENT_TYPES.contains(&event.as_str()) {
                problem(
                    index,
                    "events",
                    format!(
                        "`{event}` is not an event type: expected some of {}",
                        crate::webhooks::EVENT_TYPES.join(", ")
                    ),
                );
            }
        }
        for org in &hook.orgs {
            if !orgs.iter().any(|o| &o.name == org) {
                problem(index, "orgs", format!("`{org}` is not a configured org"));
            }
        }
        if !(1..=525_600).contains(&hook.give_up_after_minutes) {
            problem(
                index,
                "give_up_after_minutes",
                format!(
                    "{} is outside 1..=525600 (a year)",
                    hook.give_up_after_minutes
                ),
            );
        }
        if !(1..=120).contains(&hook.timeout_seconds) {
            problem(
                index,
                "timeout_seconds",
                format!("{} is outside 1..=120", hook.timeout_seconds),
            );
        }
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
