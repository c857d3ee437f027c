//! The iPXE scripts. Every one ends in the firmware's hands when something fails: a failed
//! chain, kernel, initrd or boot goes to `exit` (back to the firmware's boot order) instead of
//! stopping at an iPXE prompt.

use super::decide::Script;
use super::netboot::Netboot;

/// `/pxe-bootstrap.ipxe`: chain to the per-machine script, by the MAC of the NIC that did DHCP.
pub fn bootstrap(base: Option<&str>) -> String {
    match base {
        Some(b) => format!("#!ipxe\nchain {b}/pxe/${{mac:hexhyp}} || exit\n"),
        None => "#!ipxe\necho bty: this server has no usable address (set [server] public_url); handing back to the firmware\nsleep 5\nexit\n".into(),
    }
}

/// For an unknown machine bty-web is not recording now (creation rate or cap): hand back to
/// the firmware, which boots the next device.
pub fn not_registered() -> String {
    "#!ipxe\necho bty: this server is not recording new machines right now (a limit on unknown clients); handing back to the firmware\nsleep 5\nexit\n".into()
}

/// The script for one machine.
pub fn machine(script: &Script, base: &str, mac: &str, netboot: &Netboot, comment: &str) -> String {
    match script {
        Script::LiveChain => format!(
            "#!ipxe\n\
             # bty-web: {comment}\n\
             set bty-base {base}\n\
             kernel ${{bty-base}}/boot/{kernel}?mac={mac} {cmdline} initrd={initrd} || goto failed\n\
             initrd ${{bty-base}}/boot/{initrd}?mac={mac} || goto failed\n\
             boot || goto failed\n\
             :failed\n\
             echo bty: could not start the netboot environment from ${{bty-base}}; handing back to the firmware\n\
             sleep 5\n\
             exit\n",
            kernel = netboot.kernel,
            initrd = netboot.initrd,
            cmdline = netboot.cmdline_for(mac),
        ),
        Script::LocalDisk { drive } => format!(
            "#!ipxe\n\
             # bty-web: {comment}\n\
             echo bty: booting the local disk (platform=${{platform}})\n\
             sleep 1\n\
             iseq ${{platform}} efi && exit || sanboot --no-describe --drive {drive} || exit\n"
        ),
        Script::Exit => format!(
            "#!ipxe\n\
             # bty-web: {comment}\n\
             echo bty: nothing to boot from the network for {mac}; handing back to the firmware\n\
             sleep 1\n\
             exit\n"
        ),
        Script::Unknown => format!(
            "#!ipxe\n\
             # bty-web: {comment}\n\
             echo bty: {mac} has no usable boot setting; booting the local disk\n\
             sleep 5\n\
             iseq ${{platform}} efi && exit || sanboot --no-describe --drive 0x80 || exit\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_texts() {
        assert_eq!(
            bootstrap(Some("http://10.0.2.2:8080")),
            "#!ipxe\nchain http://10.0.2.2:8080/pxe/${mac:hexhyp} || exit\n"
        );
        assert!(bootstrap(None).ends_with("exit\n"));
        let n = Netboot::new("bty", "0.47.0", None, None, None).unwrap();
        let chain = machine(
            &Script::LiveChain,
            "http://s:1",
            "aa:bb:cc:dd:ee:ff",
            &n,
            "flash",
        );
        assert_eq!(
            chain,
            "#!ipxe\n# bty-web: flash\nset bty-base http://s:1\n\
             kernel ${bty-base}/boot/bty-netboot-x86_64.vmlinuz?mac=aa:bb:cc:dd:ee:ff console=tty0 console=ttyS1,115200 console=ttyS0,115200 earlyprintk=ttyS0,115200 modprobe.blacklist=nouveau,rndis_host bty.server=${bty-base} bty.mac=aa:bb:cc:dd:ee:ff initrd=bty-netboot-x86_64.initrd || goto failed\n\
             initrd ${bty-base}/boot/bty-netboot-x86_64.initrd?mac=aa:bb:cc:dd:ee:ff || goto failed\n\
             boot || goto failed\n:failed\n\
             echo bty: could not start the netboot environment from ${bty-base}; handing back to the firmware\nsleep 5\nexit\n"
        );
        assert!(!chain.contains("${net0/"));
        let disk = machine(
            &Script::LocalDisk {
                drive: "0x81".into(),
            },
            "b",
            "m",
            &n,
            "c",
        );
        assert!(disk.contains(
            "iseq ${platform} efi && exit || sanboot --no-describe --drive 0x81 || exit\n"
        ));
        assert!(machine(&Script::Exit, "b", "m", &n, "c").ends_with("exit\n"));
        assert!(machine(&Script::Unknown, "b", "m", &n, "c").contains("--drive 0x80"));
    }
}
