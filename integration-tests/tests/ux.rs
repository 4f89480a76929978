//! Issue 17 (in part): a block reaches the person who ran the install, not only pipgate's log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pipgate_integration_tests::installer::{self, Route};
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::{World, PUBLIC_HOST};

#[test]
fn pip_shows_why_pipgate_refused() {
    let world = World::start();
    let p = world.pipgate();
    let route = Route {
        proxy_url: p.proxy_url(),
        ca_pem: p.ca_pem.clone(),
    };
    let home = world.scratch("home-");
    let dest = world.scratch("dl-").display().to_string();
    // acme-lib is private (the private index has it): its public page is refused, and pip
    // prints the refusal's reason phrase, which names the rule (at -vv: pip logs a page it
    // could not fetch at debug level).
    let index = format!("https://{PUBLIC_HOST}/simple/");
    let out = installer::pip(
        venv::latest(),
        &route,
        &home,
        &[
            "download",
            "-vv",
            "--no-deps",
            "-d",
            &dest,
            "--index-url",
            &index,
            "acme-lib",
        ],
    );
    assert!(!out.status.success(), "{out}");
    let text = out.to_string();
    assert!(
        text.contains(
            "404 Client Error: pipgate: 'acme-lib' is private (served by private index 'corp')"
        ),
        "{text}"
    );
    // A refused download says why without any -v.
    let acme = world.file("acme-lib", "99.0");
    let out = installer::pip(
        venv::latest(),
        &route,
        &home,
        &["download", "--no-deps", "-d", &dest, &acme.url],
    );
    assert!(!out.status.success(), "{out}");
    let text = out.to_string();
    assert!(text.contains("403 Client Error: pipgate: "), "{text}");
}
