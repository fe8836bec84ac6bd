// Shared by the targets: the loaders take paths, so each input goes through one scratch file
// per process (in /dev/shm when it exists, so no disk I/O).
use std::path::PathBuf;

pub fn scratch(name: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("cxr-fuzz-{}-{name}", std::process::id()))
}

pub fn write(path: &std::path::Path, data: &[u8]) {
    std::fs::write(path, data).expect("scratch file");
}
