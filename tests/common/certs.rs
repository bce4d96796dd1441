//! Test certificates made with the `openssl` command at test time (no key is committed):
//! a CA, a server certificate for localhost/127.0.0.1 and client certificates.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory under the system temp dir for one test's files.
pub fn cert_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wps-certs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `NAME.pem` / `NAME.key`: a self-signed CA.
pub fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// `NAME.pem` / `NAME.key`: a leaf certificate signed by the CA `ca`, for `usage`
/// (`serverAuth` with localhost/127.0.0.1 names, or `clientAuth`).
pub fn make_leaf(dir: &Path, ca: &str, name: &str, usage: &str) {
    let ext = format!("{name}.cnf");
    let names = if usage == "serverAuth" {
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join(&ext),
        format!("{names}basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}
