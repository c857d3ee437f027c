//! `bty catalog [SOURCE]`: list a catalog's images merged with the local image folder.

use bty_source::HttpClient;

use crate::cli::CatalogArgs;
use crate::exit;
use crate::output::json_line;
use crate::pick::entries;
use crate::units;

pub fn run(args: CatalogArgs) -> u8 {
    let client = HttpClient::default();
    let list = match entries(args.source.as_deref(), !args.no_local, &client) {
        Ok(l) => l,
        Err(e) => {
            if args.json {
                json_line("error", serde_json::json!({ "message": e.to_string() }));
            } else {
                eprintln!("bty: {e}");
            }
            return exit::REFUSED;
        }
    };
    if args.json {
        json_line("catalog", serde_json::json!({ "images": list }));
        return exit::OK;
    }
    if list.is_empty() {
        println!(
            "no images (image folder: {})",
            bty_source::folder::image_root().display()
        );
        return exit::OK;
    }
    let width = list.iter().map(|e| e.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:width$}  {:>10}  {:14}  {:7}  SOURCE",
        "NAME", "SIZE", "FORMAT", "ARCH"
    );
    for e in &list {
        let size = e.size_bytes.map(units::bytes).unwrap_or_else(|| "-".into());
        let format = e.format.clone().unwrap_or_else(|| "?".into());
        let arch = e.arch.as_deref().unwrap_or("-");
        println!(
            "{:width$}  {:>10}  {:14}  {arch:7}  {}",
            e.name, size, format, e.src
        );
        if let Some(d) = &e.description {
            println!("{:width$}  {d}", "");
        }
    }
    exit::OK
}
