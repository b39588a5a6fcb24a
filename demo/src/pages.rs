//! The page frame and the small pieces every page shares, drawn with
//! `maud`: templates are plain Rust, checked by the compiler and escaped
//! by default, with no template files to keep in step.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// One message above the page: `code` is the stable refusal code (or a
/// short word of the demo's own) for tests and scripts.
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    pub(crate) code: String,
    pub(crate) text: String,
}

/// The page frame: `lang`, a title, the flash line and the body.
pub(crate) fn frame(title: &str, flash: Option<&Flash>, dev_tools: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — ninsho demo" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { "ninsho demo" }
                    @if dev_tools {
                        " · " span.dev { "DEVELOPMENT ONLY: " a href="/dev/inbox" { "inbox" } " · " a href="/dev/clock" { "clock" } " · " a href="/dev/gateway" { "gateway" } }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(flash) = flash {
                        p #flash data-code=(flash.code) { (flash.text) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every POST form carries.
pub(crate) fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:42rem;margin:1rem auto;padding:0 1rem}\
header{border-bottom:1px solid #ccc;padding-bottom:.5rem}.dev{background:#fee;color:#900;padding:0 .3rem}\
#flash{background:#ffd;padding:.5rem}#grace-banner{background:#fec;padding:.5rem}\
form{margin:.5rem 0}input,button{font-size:1rem;margin:.2rem}.message{border:1px solid #ccc;padding:.5rem;margin:.5rem 0}\
pre{white-space:pre-wrap}";
