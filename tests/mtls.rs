//! Mutual TLS: the emulator serves wss:// and requires a client certificate signed by its
//! client CA; the client presents the one set in its options.

mod common;

use std::sync::Arc;

use common::certs::*;
use common::*;
use webpubsub_client::{ClientCert, ClientOptions, Error, Event};
use webpubsub_emulator::{Config, Emulator, TlsFiles};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_presented_and_required() {
    let dir = cert_dir("mtls");
    make_ca(&dir, "ca");
    make_leaf(&dir, "ca", "server", "serverAuth");
    make_ca(&dir, "client-ca");
    make_leaf(&dir, "client-ca", "client", "clientAuth");
    make_ca(&dir, "other-ca");
    make_leaf(&dir, "other-ca", "intruder", "clientAuth");

    let emu = Emulator::start(Config {
        tls: Some(TlsFiles {
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
            client_ca_file: Some(dir.join("client-ca.pem")),
        }),
        ..Config::default()
    })
    .await
    .unwrap();
    let url = url(&emu, Some("u"), ROLES);
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    let cert = |name: &str| {
        Arc::new(
            ClientCert::load(
                &dir.join(format!("{name}.pem")),
                &dir.join(format!("{name}.key")),
            )
            .unwrap(),
        )
    };
    let with = |client_cert| ClientOptions {
        ca_file: Some(dir.join("ca.pem")),
        client_cert,
        ..fast_options()
    };

    // A certificate from the trusted client CA: connected, and messages flow.
    let (c, mut ev) = client_with(url.clone(), with(Some(cert("client"))));
    c.start().await.expect("mutual TLS start");
    assert!(matches!(ev.next().await, Event::Connected { .. }));
    c.join_group("g", None).await.unwrap();
    c.stop().await.unwrap();

    // No certificate, or one from another CA: refused with a clear TLS error.
    for (what, client_cert) in [("none", None), ("untrusted", Some(cert("intruder")))] {
        let (c, _ev) = client_with(url.clone(), with(client_cert));
        let e = c.start().await.unwrap_err();
        println!("{what}: {e}");
        assert!(matches!(e, Error::Connection { .. }), "{what}: {e:?}");
        let text = e.to_string().to_lowercase();
        assert!(text.contains("certificate"), "{what}: {e}");
    }
    emu.shutdown().await;

    // Loading checks the files: missing, not PEM, a key that is not the certificate's.
    let missing = ClientCert::load(&dir.join("nope.pem"), &dir.join("client.key")).unwrap_err();
    assert!(
        matches!(missing, Error::InvalidArgument(ref m) if m.contains("nope.pem")),
        "{missing:?}"
    );
    std::fs::write(dir.join("junk.pem"), "junk\n").unwrap();
    let junk = ClientCert::load(&dir.join("junk.pem"), &dir.join("client.key")).unwrap_err();
    assert!(
        matches!(junk, Error::InvalidArgument(ref m) if m.contains("no certificate")),
        "{junk:?}"
    );
    let nokey = ClientCert::load(&dir.join("client.pem"), &dir.join("client.pem")).unwrap_err();
    assert!(
        matches!(nokey, Error::InvalidArgument(ref m) if m.contains("no private key")),
        "{nokey:?}"
    );
    let mismatch =
        ClientCert::load(&dir.join("client.pem"), &dir.join("intruder.key")).unwrap_err();
    assert!(
        matches!(mismatch, Error::InvalidArgument(ref m) if m.contains("does not fit")),
        "{mismatch:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
