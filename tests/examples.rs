//! The examples are tested artifacts: each runs here to completion.

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[test]
fn quickstart_runs() {
    quickstart::main().expect("the quickstart tour completes");
}
