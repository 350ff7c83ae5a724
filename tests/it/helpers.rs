//! Fresh databases for each test, on every backend under test.

use std::future::Future;
use std::sync::Arc;

use provost::config::DatabaseConfig;
use provost::config::DatabaseUrl;
use provost::store::{self, Store};
use sqlx::Connection;

/// Where the tests find PostgreSQL. When unset, only SQLite is tested (and a note says so).
pub const POSTGRES_ENV: &str = "PROVOST_TEST_POSTGRES_URL";

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    pub async fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("provost.db").display());
        TestDatabase {
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A new, empty PostgreSQL database, if the environment names a server.
    pub async fn postgres() -> Option<TestDatabase> {
        let admin_url = std::env::var(POSTGRES_ENV).ok()?;
        let name = format!("provost_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!("{POSTGRES_ENV}={admin_url} is set but unreachable: {err}")
            });
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let mut url = url::Url::parse(&admin_url).expect("a PostgreSQL URL");
        url.set_path(&name);
        Some(TestDatabase {
            url: url.to_string(),
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// Every backend under test: SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<TestDatabase> {
        let mut databases = vec![TestDatabase::sqlite().await];
        match TestDatabase::postgres().await {
            Some(db) => databases.push(db),
            None => eprintln!("note: {POSTGRES_ENV} is not set; testing SQLite only"),
        }
        databases
    }

    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: DatabaseUrl::new(&self.url),
            max_connections: 4,
            acquire_timeout_ms: 5_000,
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Arc<dyn Store> {
        let store = store::open(&self.config()).await.expect("open the store");
        store.migrate().await.expect("migrate");
        store
    }

    /// Runs `sqlite` or `postgres` (statements, unbound), whichever this database takes, on a
    /// connection of its own.
    pub async fn execute(&self, sqlite: &str, postgres: &str) {
        match self.cleanup {
            Cleanup::Sqlite(_) => {
                let mut raw = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sqlite).execute(&mut raw).await.unwrap();
            }
            Cleanup::Postgres { .. } => {
                let mut raw = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(postgres).execute(&mut raw).await.unwrap();
            }
        }
    }

    /// The one integer `query` answers, on a connection of its own.
    pub async fn fetch_i64(&self, query: &str) -> i64 {
        match self.cleanup {
            Cleanup::Sqlite(_) => {
                let mut raw = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(query).fetch_one(&mut raw).await.unwrap()
            }
            Cleanup::Postgres { .. } => {
                let mut raw = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(query).fetch_one(&mut raw).await.unwrap()
            }
        }
    }

    pub async fn drop_database(self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        }
    }
}

/// Runs `test` once per backend under test, each on a fresh migrated database.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    for db in TestDatabase::all().await {
        let store = db.store().await;
        eprintln!("backend: {}", store.backend().name());
        test(store.clone()).await;
        store.close().await;
        db.drop_database().await;
    }
}

/// A client that sends a new bearer token named `name` with `scopes`, made in `store`.
pub async fn bearer_client(store: &Arc<dyn Store>, name: &str, scopes: &[&str]) -> reqwest::Client {
    let token = provost::tokens::generate();
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    store
        .create_token(name, &provost::tokens::hash(&token), &scopes)
        .await
        .expect("create a token");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}
