//! Without pipgate the dependency-confusion attack is real: installers take the public
//! `acme-lib` 99.0 over the private 1.0. Proves the world is a faithful copy of the problem, so
//! the through-pipgate tests in `policy.rs` mean something.
use pipgate_integration_tests::fixtures::sha256_hex;
use pipgate_integration_tests::installer;
use pipgate_integration_tests::venv;
use pipgate_integration_tests::world::World;

#[test]
fn pip_through_a_blind_tunnel_takes_the_public_acme_lib() {
    let world = World::start_control_only();
    let private = world.private_index_url();
    let public = world.public_index_url();
    let got = world.pip_download(
        &world.via_control(),
        &["--index-url", &private, "--extra-index-url", &public],
        "acme-lib",
    );
    let attacker = world.file("acme-lib", "99.0");
    assert_eq!(
        got.file_name().unwrap().to_str().unwrap(),
        attacker.filename
    );
    assert_eq!(sha256_hex(&std::fs::read(&got).unwrap()), attacker.sha256);
    // Both indexes were really consulted, through the tunnel and not around it.
    assert!(world.private_origin().asked_for("/simple/acme-lib/"));
    assert!(world.public_origin().asked_for("/simple/acme-lib/"));
    assert!(world
        .tunnel()
        .targets()
        .contains(&"pypi.org:443".to_owned()));
}

#[test]
fn uv_best_match_through_a_blind_tunnel_installs_the_payload() {
    let world = World::start_control_only();
    let venv = venv::latest();
    let target = world.scratch("site-");
    let home = world.scratch("home-");
    let private = world.private_index_url();
    let public = world.public_index_url();
    installer::uv(
        venv,
        &world.via_control(),
        &home,
        &[
            "pip",
            "install",
            "--target",
            target.to_str().unwrap(),
            "--index-url",
            &private,
            "--extra-index-url",
            &public,
            "--index-strategy",
            "unsafe-best-match",
            "acme-lib",
        ],
    )
    .assert_ok();
    let init = std::fs::read_to_string(target.join("acme_lib/__init__.py")).unwrap();
    assert!(init.contains("__version__ = \"99.0\""), "{init}");
    assert!(init.contains("MARKER = \"payload\""), "{init}");
}

#[test]
fn pip_through_a_blind_tunnel_follows_an_external_link() {
    // The public page of `extlinks` links 2.0 on evil.test: without pipgate pip fetches it.
    let world = World::start_control_only();
    let got = world.pip_download(
        &world.via_control(),
        &["--index-url", &world.public_index_url()],
        "extlinks==2.0",
    );
    let external = world.file("extlinks", "2.0");
    assert_eq!(sha256_hex(&std::fs::read(&got).unwrap()), external.sha256);
    assert!(world.evil_origin().asked_for(&external.filename));
}

#[test]
fn pip_through_a_blind_tunnel_follows_links_hidden_from_naive_parsers() {
    let world = World::start_control_only();
    let got = world.pip_download(
        &world.via_control(),
        &["--index-url", &world.public_index_url()],
        "tricky",
    );
    let got = sha256_hex(&std::fs::read(&got).unwrap());
    let external: Vec<&str> = ["2.0", "3.0", "4.0", "7.0"]
        .iter()
        .map(|v| world.file("tricky", v).sha256.as_str())
        .collect();
    assert!(
        external.contains(&got.as_str()),
        "pip took an on-host file: {got}"
    );
    assert!(!world.evil_origin().requests().is_empty());
}
