//! Catalog `arch` (upstream 0.53) and entries that cannot be flashed, against the real binary:
//! parsed or guessed, kept, emitted in `/catalog.toml` and `/images`; binding an image built
//! for another architecture than the machine's inventory said is refused, bulk binding skips
//! and names such machines, a machine of unknown architecture is bound with a warning on its
//! page; nosi's netboot bundles are listed but never offered or bindable; `ramboot` is refused
//! with a reason.

mod common;

use common::{Client, Server, serve_files, urlencode};
use serde_json::json;

const CATALOG: &str = r#"version = 1

[[images]]
name = "debian-13-amd64.img.zst"
src = "http://127.0.0.1:9/debian-13-amd64.img.zst"

[[images]]
name = "raspberry"
src = "http://127.0.0.1:9/rpi.img.xz"
arch = "arm64"

[[images]]
name = "debian-13-netboot"
src = "http://127.0.0.1:9/debian-13-netboot.tar.gz"
format = "tar.gz"
"#;

const X86: &str = "52:54:00:a0:00:01";
const UNKNOWN: &str = "52:54:00:a0:00:02";

fn refs(c: &mut Client) -> (String, String, String) {
    let list = c.get("/catalog/entries").json();
    let by = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} not imported: {list}"))["bty_image_ref"]
            .as_str()
            .unwrap()
            .to_string()
    };
    (
        by("debian-13-amd64.img.zst"),
        by("raspberry"),
        by("debian-13-netboot"),
    )
}

fn bind(c: &mut Client, mac: &str, image: &str) -> common::Resp {
    c.json(
        "PUT",
        &format!("/machines/{mac}"),
        &json!({"bty_image_ref": image, "boot_mode": "bty-flash-once",
                "target_disk_serial": "S1", "labels": ["fleet"]}),
    )
}

#[test]
fn architectures_and_unflashable_entries() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let files = serve_files(vec![("/catalog.toml", CATALOG.to_string())]);
    let r = c.request(
        "POST",
        &format!(
            "/catalog/import?source={}",
            urlencode(&format!("{files}/catalog.toml"))
        ),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (amd64, arm64, bundle) = refs(&mut c);

    // Kept and emitted: the declared one in canonical spelling, the guessed one, none.
    let toml = c.get("/catalog.toml").body;
    assert!(toml.contains("arch = \"x86_64\""), "{toml}");
    assert!(toml.contains("arch = \"aarch64\""), "{toml}");
    let images = c.get("/images").json();
    let arch_of = |name: &str| {
        images
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(arch_of("raspberry")["arch"], "aarch64");
    assert_eq!(arch_of("debian-13-amd64.img.zst")["arch"], "x86_64");
    assert_eq!(arch_of("debian-13-netboot")["arch"], json!(null));
    assert_eq!(arch_of("raspberry")["cached"], false);

    // A machine whose inventory says amd64 (kept as x86_64).
    let mut pxe = s.client();
    assert_eq!(pxe.get(&format!("/pxe/{X86}/plan")).status, 200);
    let r = pxe.json(
        "POST",
        &format!("/pxe/{X86}/inventory"),
        &json!({"disks": [{"path": "/dev/vda", "serial": "S1"}], "arch": "amd64"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(c.get(&format!("/machines/{X86}")).json()["arch"], "x86_64");

    let r = bind(&mut c, X86, &arm64);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("built for aarch64") && r.body.contains("reported x86_64"),
        "{}",
        r.body
    );
    let r = bind(&mut c, X86, &bundle);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("cannot be flashed"), "{}", r.body);
    assert_eq!(
        c.get(&format!("/machines/{X86}")).json()["bty_image_ref"],
        json!(null),
        "nothing stored"
    );
    assert_eq!(bind(&mut c, X86, &amd64).status, 200);

    // Unknown architecture: allowed, the page warns, the plan carries the image's arch.
    let r = bind(&mut c, UNKNOWN, &arm64);
    assert_eq!(r.status, 200, "{}", r.body);
    let page = c.get(&format!("/ui/machines/{UNKNOWN}")).body;
    assert!(page.contains("Architecture unchecked"), "{page}");
    assert!(page.contains("not reported"), "{page}");
    let page = c.get(&format!("/ui/machines/{X86}")).body;
    assert!(!page.contains("Architecture unchecked"));
    assert!(page.contains(">x86_64<"), "{page}");
    assert_eq!(
        pxe.get(&format!("/pxe/{UNKNOWN}/plan")).json()["arch"],
        "aarch64"
    );

    // The pickers offer no bundle; the images page marks it.
    assert!(
        !page.contains(&format!("value=\"{bundle}\"")),
        "machine picker"
    );
    assert!(page.contains(&format!("value=\"{arm64}\"")));
    let list = c.get("/ui/machines").body;
    assert!(
        !list.contains(&format!("value=\"{bundle}\"")),
        "bulk picker"
    );
    assert!(list.contains(&format!("value=\"{amd64}\"")));
    let imgs = c.get("/ui/images").body;
    assert!(imgs.contains("not flashable"), "{imgs}");

    // Bulk: the x86_64 machine is skipped and named, the other one changed.
    let token = c.csrf();
    let r = c.form(
        "/ui/machines/bulk",
        &[
            ("csrf", &token),
            ("label", "fleet"),
            ("q", ""),
            ("boot_mode", "bty-flash-always"),
            ("bty_image_ref", &arm64),
            ("count", "2"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let back = r.header("location").unwrap_or_default().replace('+', " ");
    let back = percent_decode(&back);
    assert!(back.contains("Set 1 machines"), "{back}");
    assert!(
        back.contains(X86) && back.contains("built for aarch64"),
        "{back}"
    );
    assert_eq!(
        c.get(&format!("/machines/{UNKNOWN}")).json()["boot_mode"],
        "bty-flash-always"
    );
    assert_eq!(
        c.get(&format!("/machines/{X86}")).json()["bty_image_ref"],
        json!(amd64)
    );

    // Upstream 0.77's diskless mode: refused with what to use instead.
    let r = c.json(
        "PUT",
        &format!("/machines/{X86}"),
        &json!({"boot_mode": "ramboot", "bty_image_ref": amd64}),
    );
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("diskless") && r.body.contains("bty-flash-once"),
        "{}",
        r.body
    );
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
