//! `provost connect --org NAME`: the OAuth web server flow from a terminal. Prints the URL to
//! open, receives Salesforce's answer on a local port, checks and stores the connection.

use anyhow::Context;

use super::{open_store, Outcome};
use crate::config::Config;

pub(super) async fn run(
    config: &Config,
    org: &str,
    port: u16,
    replace: bool,
) -> anyhow::Result<Outcome> {
    let org = config.org(org).map_err(anyhow::Error::msg)?;
    let store = open_store(config).await?;
    let secrets = crate::org::secrets::SecretBox::load(&config.secrets.key_file)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("listening for the callback on 127.0.0.1:{port} (choose another with --port)")
        })?;
    let redirect_uri = format!("http://{}/OauthRedirect", listener.local_addr()?);
    let start = crate::org::connect::Start {
        started_by: "cli".to_owned(),
        replace,
    };
    let url = crate::org::connect::begin(&store, &secrets, org, &redirect_uri, &start).await?;
    println!(
        "Open this URL in a browser to authorise Provost for org `{}`:\n{url}",
        org.name
    );
    println!("(The connected app's callback URL must be {redirect_uri}.)");
    let callback =
        crate::org::connect::await_browser_callback(listener, std::time::Duration::from_secs(600))
            .await?;
    let connected =
        crate::org::connect::complete(config, &store, &secrets, callback, &redirect_uri).await?;
    println!(
        "Connected org `{}` ({}).",
        connected.org, connected.instance_url
    );
    print!("{}", super::preflight::render(org, &connected.preflight));
    store.close().await;
    if !connected.preflight.ok {
        return Ok(Outcome::ChecksFailed);
    }

    Ok(Outcome::Success)
}
