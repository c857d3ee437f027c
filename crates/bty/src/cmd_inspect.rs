//! `bty inspect SOURCE`: what an image is, without writing anything.

use bty_image::{ImageInfo, inspect};

use crate::cli::InspectArgs;
use crate::exit;
use crate::output::json_line;
use crate::units;

pub fn run(args: InspectArgs) -> u8 {
    let label = args
        .source
        .clone()
        .or(args.select.image.clone())
        .unwrap_or_default();
    let result = crate::pick::pick(args.source.as_deref(), &args.select).and_then(|r| {
        let mut info = inspect(r.source.as_ref()).map_err(|e| e.to_string())?;
        info.notes.splice(0..0, r.notes);
        if let Some(d) = r.expected_sha256 {
            info.notes.push(format!(
                "expected {d}, from {}",
                r.digest_from.unwrap_or_default()
            ));
        }
        Ok(info)
    });
    match (result, args.json) {
        (Ok(info), true) => {
            json_line("inspect", &info);
            exit::OK
        }
        (Ok(info), false) => {
            print!("{}", render(&info));
            exit::OK
        }
        (Err(e), json) => {
            report_error(&label, &e, json);
            exit::REFUSED
        }
    }
}

pub fn report_error(source: &str, e: &dyn std::fmt::Display, json: bool) {
    if json {
        json_line(
            "error",
            serde_json::json!({ "source": source, "message": e.to_string() }),
        );
    } else {
        eprintln!("bty: {source}: {e}");
    }
}

pub fn render(info: &ImageInfo) -> String {
    let mut s = String::new();
    s.push_str(&format!("source:          {}\n", info.source));
    s.push_str(&format!("format:          {}\n", info.layer_chain()));
    if let Some(n) = info.source_size {
        s.push_str(&format!(
            "source size:     {n} bytes ({})\n",
            units::bytes(n)
        ));
    }
    match (info.output_size, info.output_size_from) {
        (Some(n), from) => s.push_str(&format!(
            "image size:      {n} bytes ({}), exact{}\n",
            units::bytes(n),
            from.map(|f| format!(", from the {f}")).unwrap_or_default()
        )),
        (None, _) => s.push_str("image size:      unknown until decoded\n"),
    }
    if let Some(t) = info.partition_table {
        let name = match t {
            bty_image::PartitionTable::Gpt => "GPT",
            bty_image::PartitionTable::Mbr => "MBR",
            bty_image::PartitionTable::IsoHybrid => "ISO 9660 hybrid (MBR/GPT)",
        };
        s.push_str(&format!("partition table: {name}\n"));
    }
    if let Some(q) = &info.qcow2 {
        s.push_str(&format!("qcow2 version:   {}\n", q.version));
        s.push_str(&format!("cluster size:    {} bytes\n", q.cluster_size));
        s.push_str(&format!(
            "allocated:       {} bytes ({}) of {} ({}% stored)\n",
            q.allocated_bytes,
            units::bytes(q.allocated_bytes),
            units::bytes(q.virtual_size),
            (q.allocated_bytes * 100)
                .checked_div(q.virtual_size)
                .unwrap_or(0)
        ));
        s.push_str(&format!(
            "compression:     {} ({} in compressed clusters)\n",
            q.compression_type,
            units::bytes(q.compressed_bytes)
        ));
        let features = if q.features.is_empty() {
            "none".to_string()
        } else {
            q.features.join(", ")
        };
        s.push_str(&format!("features:        {features}\n"));
        s.push_str(&format!("snapshots:       {}\n", q.snapshots));
    }
    for n in &info.notes {
        s.push_str(&format!("note:            {n}\n"));
    }
    s
}
