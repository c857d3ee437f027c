//! `GET /pxe/{mac}/plan`: what the agent on a netbooted machine does next.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Plan {
    /// Write `image` onto the disk whose serial is `target_disk_serial`, then POST done.
    Flash {
        image: String,
        target_disk_serial: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
        /// sha256 of the image as published, when known: the agent verifies it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disk_image_sha: Option<String>,
        /// The CPU architecture the image is built for, when the catalog says or its name
        /// does (ours): the agent refuses an image for another architecture.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arch: Option<String>,
    },
    /// Run the wizard on this catalog.
    Interactive { catalog: String },
    /// Post the inventory (already done) and reboot.
    Inventory,
    /// Nothing to do.
    Exit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        let p = Plan::Flash {
            image: "http://s/x.img.zst".into(),
            target_disk_serial: "S1".into(),
            name: "x".into(),
            format: None,
            disk_image_sha: Some("ab".into()),
            arch: None,
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"mode": "flash", "image": "http://s/x.img.zst", "target_disk_serial": "S1", "name": "x", "disk_image_sha": "ab"})
        );
        assert_eq!(
            serde_json::to_string(&Plan::Exit).unwrap(),
            r#"{"mode":"exit"}"#
        );
        let i: Plan = serde_json::from_str(r#"{"mode":"interactive","catalog":"c"}"#).unwrap();
        assert_eq!(
            i,
            Plan::Interactive {
                catalog: "c".into()
            }
        );
    }
}
