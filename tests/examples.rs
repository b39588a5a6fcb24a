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
