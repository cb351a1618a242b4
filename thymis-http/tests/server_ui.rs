//! The embedded dashboard: its files, deep links answered with the app, cache and security
//! headers, gzip, and API paths that stay JSON 404s.

mod common;

use common::{anonymous, json, Controller};

#[tokio::test]
async fn the_dashboard_is_served_for_every_page_path() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = anonymous();

    let index = client.get(controller.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let policy = index.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = index.text().await.unwrap();
    assert!(html.contains("<div id=\"app\">"), "{html}");

    // A deep link gets the same app, which routes on the client.
    for path in ["/configs/lobby/configure?module=1", "/history", "/login"] {
        let page = client.get(controller.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(page.text().await.unwrap(), html, "{path}");
    }

    // Bundle files are cached for good (their names carry a content hash) and gzipped.
    let script = html
        .split('"')
        .find(|part| part.starts_with("/assets/") && part.ends_with(".js"))
        .expect("index.html names its script");
    let plain = client.get(controller.url(script)).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(
        plain.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let plain_len = plain.bytes().await.unwrap().len();
    let gzipped = client
        .get(controller.url(script))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let gzipped_len = gzipped.bytes().await.unwrap().len();
    assert!(
        gzipped_len * 2 < plain_len,
        "{gzipped_len} vs {plain_len} bytes"
    );

    // Unknown bundle files and API paths are not answered with the app.
    let missing = client
        .get(controller.url("/assets/gone-1234.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    for path in ["/api/nothing", "/auth/nothing", "/agent/nothing"] {
        let response = client.get(controller.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(json(response).await["detail"], "Not Found", "{path}");
    }
    let post = client
        .post(controller.url("/configs"))
        .header("origin", controller.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 404);
}
