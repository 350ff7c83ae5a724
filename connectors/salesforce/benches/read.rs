//! Reading the emulator's `large` org through the connector interface:
//! `cargo bench -p provost-salesforce --bench read`.
//!
//! Prints per resource the records and pages read, then the wall time, records per second,
//! API calls against the minimum (the sum over queries of ceil(rows / 2000)), and the peak
//! resident memory of the process (emulator included: it shares the process).

use std::time::Instant;

use provost_connector::connector::{Connector, Cursor};
use provost_connector::secret::Secret;
use provost_salesforce::reader::{ReadOptions, SalesforceReader};
use provost_salesforce::{ClientConfig, Credentials, SalesforceClient};
use provost_salesforce_emulator::{server, Emulator, EmulatorConfig, Preset};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let emulator = Emulator::new(EmulatorConfig { preset: Preset::LARGE, daily_limit: 10_000_000, ..EmulatorConfig::default() });
        let base = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let after_generation = peak_rss_mb();
        let credentials = Credentials::JwtBearer {
            client_id: emulator.app.client_id.clone(),
            username: emulator.integration_username(),
            private_key_pem: Secret::new(emulator.app.private_key_pem.clone()),
        };
        let reader = SalesforceReader::new(SalesforceClient::new(ClientConfig::new(&base), credentials).unwrap(), ReadOptions { exclude_portal_users: true, include_inactive_users: true, read_access: true });
        let started = Instant::now();
        let mut records_total = 0u64;
        let mut minimum_calls = 0u64;
        for resource in reader.resource_types() {
            let resource_started = Instant::now();
            let (mut pages, mut items, mut source_rows) = (0u64, 0usize, 0u64);
            let mut cursor: Option<Cursor> = None;
            loop {
                let page = reader.read_page(resource, cursor.as_ref(), None).await.unwrap();
                if pages == 0 {
                    source_rows = page.total.unwrap_or(0);
                }
                pages += 1;
                items += page.accounts.len() + page.entitlements.len() + page.grants.len();
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            records_total += source_rows;
            minimum_calls += source_rows.div_ceil(2000).max(1);
            println!(
                "{:<36} {:>8} source rows {:>5} pages {:>8} items {:>8.2} s",
                resource.id,
                source_rows,
                pages,
                items,
                resource_started.elapsed().as_secs_f64()
            );
        }
        let elapsed = started.elapsed();
        let calls = reader.client().calls();
        // Where a page's time goes: the raw query pages (HTTP, emulator, JSON parse) alone.
        let raw_started = Instant::now();
        let query = provost_salesforce::soql::Query::select(
            "PermissionSetAssignment",
            &["Id", "AssigneeId", "PermissionSetId", "PermissionSetGroupId", "ExpirationDate", "PermissionSet.IsOwnedByProfile", "SystemModstamp"],
        );
        let mut page = reader.client().query(&query).await.unwrap();
        let mut raw_pages = 1;
        while let Some(next) = page.next_records_url.take() {
            page = reader.client().query_more(&next).await.unwrap();
            raw_pages += 1;
        }
        println!(
            "raw permission set assignment pages (no portal filter, no mapping): {raw_pages} pages in {:.2} s",
            raw_started.elapsed().as_secs_f64()
        );
        println!(
            "read large: {:.2} s, {:.0} source rows/s, {} API calls against a minimum of {} ({} lookups: frozen users, group components), peak RSS {:.0} MB ({:.0} MB after generating the org)",
            elapsed.as_secs_f64(),
            records_total as f64 / elapsed.as_secs_f64(),
            calls,
            minimum_calls,
            calls.saturating_sub(minimum_calls),
            peak_rss_mb(),
            after_generation
        );
    });
}
