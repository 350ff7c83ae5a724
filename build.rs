//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the migrations directories at
//! compile time, and cargo does not track new files there on its own.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
