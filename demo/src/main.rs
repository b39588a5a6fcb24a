//! `cargo run -p ninsho-demo`: serves the ninsho demo and prints its URL.

use ninsho_demo::{Config, start};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ninsho::audit=info".into()),
        )
        .init();
    let config = Config::from_env()?;
    let dev_tools = config.dev_tools;
    let running = start(config).await?;
    println!("ninsho demo: http://{}/", running.addr());
    if dev_tools {
        println!(
            "DEVELOPMENT ONLY tools are on (dev inbox at /dev/inbox, clock at /dev/clock); \
             set NINSHO_DEMO_DEV_TOOLS=0 to turn them off."
        );
    }
    tokio::signal::ctrl_c().await?;
    running.stop().await?;
    Ok(())
}
