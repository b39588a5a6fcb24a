//! The store conformance suite against the reference `MemoryStore`: what
//! every adapter's own conformance test looks like.
#![cfg(feature = "testkit")]

use std::sync::Arc;

use ninsho::store::{MemoryStore, Store};
use ninsho::testkit;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_every_check() {
    testkit::run_all(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_shared_by_two_instances() {
    // One process: both "instances" hold the same store.
    let store = Arc::new(MemoryStore::new());
    testkit::race_two_instances(store.clone(), store).await;
}
