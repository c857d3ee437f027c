//! What firmware and the netboot agent are told: the per-machine decision (`decide`), the
//! iPXE scripts (`scripts`), and the netboot environment's file names and kernel command line
//! (`netboot`), and the limits on what unknown clients can make it store (`limits`).

pub mod decide;
pub mod limits;
pub mod netboot;
pub mod scripts;
