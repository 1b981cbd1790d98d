//! Object-store sources in the service: new objects are picked up while it runs and exactly
//! once across restarts — on a local directory, and on the S3 emulator (moto) and Azurite when
//! `.ci/run` started them.

use std::io::Write as _;
use std::path::Path;

use super::super::Scratch;
use super::{Service, flow_line, per_source, wait_for, write_config};

fn lines(tag: u8, n: usize) -> String {
    (0..n).map(|i| flow_line(i, tag) + "\n").collect()
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).expect("gzip");
    enc.finish().expect("gzip")
}

/// Run the scenario with `put` writing objects under the source's prefix.
fn scenario(s: &Scratch, section: &str, put: &dyn Fn(&str, Vec<u8>)) {
    let config = write_config(s.dir.path(), &s.lake(), false, None, section);
    put("2024/05/01/a.log", lines(1, 40).into_bytes());
    put("2024/05/01/b.log.gz", gzip(&lines(2, 30)));
    let mut service = Service::start(&config, &s.path("objects-1.log"));
    wait_for("the first objects", || {
        service.assert_running();
        per_source(s, &["flows", "quarantine"]).len() == 70
    });
    put("2024/05/02/c.log", lines(3, 20).into_bytes());
    wait_for("an object written while the service runs", || {
        service.assert_running();
        per_source(s, &["flows", "quarantine"]).len() == 90
    });
    assert!(service.terminate(), "SIGTERM must exit 0");

    // A restart reads nothing again; a new object is picked up once.
    put("2024/05/02/d.log", lines(4, 10).into_bytes());
    let mut service = Service::start(&config, &s.path("objects-2.log"));
    wait_for("the object written while the service was down", || {
        service.assert_running();
        per_source(s, &["flows", "quarantine"]).len() == 100
    });
    assert!(service.terminate(), "SIGTERM must exit 0");
    let counts = per_source(s, &["flows", "quarantine"]);
    assert_eq!(counts.len(), 100);
    assert!(counts.values().all(|n| *n == 1), "an object was read twice");
    assert!(counts.keys().any(|k| k.ends_with("b.log.gz:30")), "gzip object read to its end");
}

#[test]
fn local_objects_are_ingested_once_across_restarts() {
    let s = Scratch::new();
    let root = s.path("incoming");
    std::fs::create_dir_all(&root).expect("mkdir");
    let section = format!(
        "[[objects]]\nurl = \"file://{}\"\nformat = \"aws-vpcflow\"\npoll_interval = \"200ms\"\n",
        root.display()
    );
    let put = |name: &str, body: Vec<u8>| {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).expect("mkdir");
        // Write then rename, as a delivering service would: the poller never sees half a file.
        let tmp = s.path("upload.tmp");
        std::fs::write(&tmp, body).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
    };
    scenario(&s, &section, &put);
}

#[test]
fn s3_emulator_objects_are_ingested_once_across_restarts() {
    let Some(endpoint) =
        super::super::sources::emulator("ZTLAKE_TEST_S3_ENDPOINT", "S3 emulator (moto server)")
    else {
        return;
    };
    let bucket = std::env::var("ZTLAKE_TEST_S3_BUCKET").unwrap_or_else(|_| "ztlake-ci".into());
    let prefix = super::super::sources::unique("service");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("ztlake-test")
        .with_secret_access_key("ztlake-test")
        .build()
        .expect("s3 writer");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let s = Scratch::new();
    let section = format!(
        "[[objects]]\nurl = \"s3://{bucket}/{prefix}/\"\nformat = \"aws-vpcflow\"\npoll_interval = \"200ms\"\n\
         options = {{ endpoint = \"{endpoint}\", allow_http = \"true\", region = \"us-east-1\", \
         access_key_id = \"ztlake-test\", secret_access_key = \"ztlake-test\" }}\n"
    );
    let put = |name: &str, body: Vec<u8>| {
        use object_store::ObjectStoreExt as _;
        let path = object_store::path::Path::from(format!("{prefix}/{name}"));
        runtime
            .block_on(store.put(&path, object_store::PutPayload::from(body)))
            .unwrap_or_else(|e| panic!("put {name}: {e}"));
    };
    scenario(&s, &section, &put);
}

#[test]
fn azurite_objects_are_ingested_once_across_restarts() {
    let Some(endpoint) = super::super::sources::emulator(
        "ZTLAKE_TEST_AZURITE_ENDPOINT",
        "Azure Blob emulator (Azurite)",
    ) else {
        return;
    };
    // Azurite's well-known development account key (public, not a secret).
    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    let container =
        std::env::var("ZTLAKE_TEST_AZURITE_CONTAINER").unwrap_or_else(|_| "ztlake-ci".into());
    let prefix = super::super::sources::unique("service");
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account("devstoreaccount1")
        .with_access_key(KEY)
        .with_endpoint(endpoint.clone())
        .with_allow_http(true)
        .with_container_name(&container)
        .build()
        .expect("azure writer");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let s = Scratch::new();
    let section = format!(
        "[[objects]]\nurl = \"az://{container}/{prefix}/\"\nformat = \"aws-vpcflow\"\npoll_interval = \"200ms\"\n\
         options = {{ account_name = \"devstoreaccount1\", access_key = \"{KEY}\", \
         endpoint = \"{endpoint}\", allow_http = \"true\" }}\n"
    );
    let put = |name: &str, body: Vec<u8>| {
        use object_store::ObjectStoreExt as _;
        let path = object_store::path::Path::from(format!("{prefix}/{name}"));
        runtime
            .block_on(store.put(&path, object_store::PutPayload::from(body)))
            .unwrap_or_else(|e| panic!("put {name}: {e}"));
    };
    scenario(&s, &section, &put);
}
