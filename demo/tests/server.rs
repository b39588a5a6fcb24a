//! The demo's server-side rules, over HTTP without a browser: dev tools
//! absent unless enabled, CSRF enforced on POST, pages in one language.

use ninsho_demo::{Config, start};

async fn get(url: String) -> reqwest::Response {
    match reqwest::get(url).await {
        Ok(response) => response,
        Err(e) => panic!("request failed: {e}"),
    }
}

#[tokio::test]
async fn dev_tools_are_404_unless_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.dev_tools = false;
    let running = start(config).await.unwrap();
    let base = format!("http://{}", running.addr());
    for path in ["/dev/inbox", "/dev/clock", "/dev/legacy", "/dev/gateway"] {
        assert_eq!(get(format!("{base}{path}")).await.status(), 404, "{path}");
    }
    let switch = reqwest::Client::new()
        .post(format!("{base}/dev/gateway"))
        .form(&[("csrf", "0000"), ("action", "fail-sms")])
        .send()
        .await
        .unwrap();
    assert_eq!(switch.status(), 404, "no SMS switch when dev tools are off");
    let home = get(format!("{base}/")).await.text().await.unwrap();
    assert!(
        !home.contains("/dev/inbox"),
        "no link to dev tools when they are off"
    );
    running.stop().await.unwrap();

    let running = start(Config::for_tests(dir.path())).await.unwrap();
    let base = format!("http://{}", running.addr());
    let inbox = get(format!("{base}/dev/inbox")).await;
    assert_eq!(inbox.status(), 200);
    assert!(inbox.text().await.unwrap().contains("DEVELOPMENT ONLY"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_post_without_the_session_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(Config::for_tests(dir.path())).await.unwrap();
    let base = format!("http://{}", running.addr());
    let client = reqwest::Client::new();
    let forged = client
        .post(format!("{base}/signup"))
        .form(&[
            ("csrf", "0000"),
            ("username", "mallory"),
            ("password", "password1"),
            ("email", "m@example.com"),
            ("phone", "090-1234-5678"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Nothing was sent on a forged form's behalf.
    let inbox = get(format!("{base}/dev/inbox")).await.text().await.unwrap();
    assert!(!inbox.contains("class=\"message\""), "{inbox}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn pages_declare_their_language() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(Config::for_tests(dir.path())).await.unwrap();
    let page = get(format!("http://{}/signup", running.addr()))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("<html lang=\"en\">"));
    assert!(page.contains("id=\"signup-form\""));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_post_with_another_token_than_the_sessions_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(Config::for_tests(dir.path())).await.unwrap();
    let base = format!("http://{}", running.addr());
    let page = get(format!("{base}/signup")).await;
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let marker = "name=\"csrf\" value=\"";
    let start_at = html.find(marker).unwrap() + marker.len();
    let token = &html[start_at..start_at + 64];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |csrf: String| {
        client
            .post(format!("{base}/signup"))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf),
                ("username", "taro".into()),
                ("password", "password1".into()),
                ("email", "taro@example.com".into()),
                ("phone", "090-1234-5678".into()),
            ])
            .send()
    };
    let mut wrong = token.to_owned();
    wrong.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
    assert_eq!(post(wrong).await.unwrap().status(), 403);
    assert_eq!(post(token.to_owned()).await.unwrap().status(), 303);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_forged_post_cannot_make_sms_fail() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(Config::for_tests(dir.path())).await.unwrap();
    let base = format!("http://{}", running.addr());
    let forged = reqwest::Client::new()
        .post(format!("{base}/dev/gateway"))
        .form(&[("csrf", "0000"), ("action", "fail-sms")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let page = get(format!("{base}/dev/gateway"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-sms=\"delivered\""), "{page}");
    running.stop().await.unwrap();
}
