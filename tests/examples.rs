//! The examples are tested artifacts: each runs here to completion.

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[allow(dead_code)]
#[path = "../examples/custom_gateway.rs"]
mod custom_gateway;

// Runs the store conformance kit, so it needs the `testkit` feature (as its
// `[[example]]` entry in Cargo.toml says); `cargo test --all-features` runs it.
#[cfg(feature = "testkit")]
#[allow(dead_code)]
#[path = "../examples/custom_store.rs"]
mod custom_store;

#[allow(dead_code)]
#[path = "../examples/load.rs"]
mod load;

#[test]
fn quickstart_runs() {
    quickstart::main().expect("the quickstart tour completes");
}

#[test]
fn custom_gateway_runs() {
    custom_gateway::main().expect("the gateway adapter demo completes");
}

#[cfg(feature = "testkit")]
#[test]
fn custom_store_runs() {
    custom_store::main().expect("the store adapter passes the conformance kit and signs in");
}

/// The load test on the memory store, briefly: it must pass its audit.
#[test]
fn load_passes_its_audit_on_the_memory_store() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let options = load::Options {
        store: load::StoreKind::Memory,
        users: 40,
        concurrency: 4,
        seconds: 1,
        wrong_rate: 0.2,
        recovery_rate: 0.1,
        pool: 2,
    };
    let outcome = runtime
        .block_on(load::load(options))
        .expect("the load test runs");
    assert!(outcome.passed(), "{outcome:?}");
    assert!(outcome.throughput > 0.0);
}
