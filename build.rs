//! Build script: sets the shared library's SONAME and, with the `gen-header` feature (used by
//! `scripts/gen-header.sh` only), generates the C header with cbindgen.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwebpubsub_client.so.0");
    }
    #[cfg(feature = "gen-header")]
    header::generate();
}

#[cfg(feature = "gen-header")]
mod header {
    use std::env;
    use std::path::PathBuf;

    /// The version macros, from the package version, so the header always matches Cargo.toml.
    fn version_macros() -> String {
        let part = |k: &str| env::var(k).expect("cargo sets the package version");
        let (major, minor, patch) = (
            part("CARGO_PKG_VERSION_MAJOR"),
            part("CARGO_PKG_VERSION_MINOR"),
            part("CARGO_PKG_VERSION_PATCH"),
        );
        format!(
            "\n#define WPS_VERSION_MAJOR {major}\n\
             #define WPS_VERSION_MINOR {minor}\n\
             #define WPS_VERSION_PATCH {patch}\n\
             /** (MAJOR << 16) | (MINOR << 8) | PATCH; compare with wps_version_number(). */\n\
             #define WPS_VERSION_NUMBER ((WPS_VERSION_MAJOR << 16) | (WPS_VERSION_MINOR << 8) | WPS_VERSION_PATCH)\n\
             /** \"MAJOR.MINOR.PATCH\"; compare with wps_version_string(). */\n\
             #define WPS_VERSION_STRING \"{major}.{minor}.{patch}\"\n"
        )
    }

    pub fn generate() {
        let dir =
            PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets the manifest dir"));
        println!("cargo:rerun-if-changed=src/ffi");
        println!("cargo:rerun-if-changed=cbindgen.toml");
        println!("cargo:rerun-if-env-changed=WPS_HEADER_OUT");
        let mut config =
            cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
        config.after_includes = Some(version_macros());
        let out = env::var_os("WPS_HEADER_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env::var("OUT_DIR").unwrap()).join("webpubsub_client.h")
            });
        cbindgen::Builder::new()
            .with_config(config)
            .with_src(dir.join("src/ffi/mod.rs"))
            .generate()
            .expect("cbindgen could not generate the header")
            .write_to_file(out);
    }
}
