//! A write-ahead log: what is appended is on disk before the append returns.
//!
//! A WAL is a directory of files `{seq:020}.wal`: an 8-byte magic, a little-endian u32 format
//! version, then records `[payload length: u32 LE][CRC-32 of payload: u32 LE][payload]`. What a
//! payload holds is the owner's business. One thread owns the open file; appends queue up while
//! it syncs, and the next write and `fdatasync` serve everything that queued (group commit).
//!
//! `checkpoint` holds the highest file sequence whose records the owner no longer needs; replay
//! starts after it. Replay cuts a torn or corrupt tail (logging what it cut) instead of failing.
//! The embedded storage engine keeps its WAL in front of its segments, the tail sampler keeps
//! one for the spans it holds back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread;

use tokio::sync::{mpsc, oneshot};

const MAGIC: &[u8; 8] = b"CLEWWAL\0";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 12;
const RECORD_HEADER_LEN: usize = 8;
/// A record larger than this is treated as corruption (requests are limited far below it).
const MAX_RECORD_LEN: u32 = 1 << 30;
/// The most bytes one group commit writes before syncing.
const MAX_GROUP_BYTES: usize = 16 << 20;

/// Frames `payload` as a record.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    frame_with(payload.len(), |out| {
        out.extend_from_slice(payload);
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap_or_else(|never| match never {})
}

/// A record whose `payload_len`-byte payload `write` appends to the buffer it is given, framed
/// without copying the payload.
pub fn frame_with<E>(payload_len: usize, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<Vec<u8>, E> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload_len);
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    write(&mut out)?;
    let len = (out.len() - RECORD_HEADER_LEN) as u32;
    let crc = crc32fast::hash(&out[RECORD_HEADER_LEN..]);
    out[..4].copy_from_slice(&len.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// WAL files in `dir`, by sequence.
pub fn list_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            files.push((seq, path));
        }
    }
    files.sort();
    Ok(files)
}

pub fn read_checkpoint(dir: &Path) -> io::Result<u64> {
    match fs::read_to_string(dir.join("checkpoint")) {
        Ok(text) => text.trim().parse().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("wal checkpoint {text:?} is not a number: {e}"))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Records that every file up to `seq` is in segments, then deletes those files.
pub fn checkpoint(dir: &Path, seq: u64) -> io::Result<()> {
    let tmp = dir.join("checkpoint.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(seq.to_string().as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join("checkpoint"))?;
    sync_dir(dir)?;
    // The checkpoint is what counts; files it covers that cannot be deleted now are deleted by
    // the next replay.
    for (file_seq, path) in list_files(dir)? {
        if file_seq <= seq {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "cannot delete a checkpointed wal file");
            }
        }
    }
    Ok(())
}

/// What replay found.
#[derive(Debug, Default)]
pub struct ReplayReport {
    pub records: usize,
    pub files: usize,
    /// Bytes cut from torn or corrupt tails.
    pub cut_bytes: u64,
    /// The highest sequence present, or the checkpoint when no file is left.
    pub last_seq: u64,
}

/// Reads every record after the checkpoint, in order, cutting torn tails. `each` gets a record's
/// file sequence and payload and says whether it could read it; the first it cannot is treated
/// as corruption and cut with everything after it in its file.
pub fn replay(dir: &Path, mut each: impl FnMut(u64, &[u8]) -> bool) -> io::Result<ReplayReport> {
    let checkpoint = read_checkpoint(dir)?;
    let mut report = ReplayReport { last_seq: checkpoint, ..Default::default() };
    for (seq, path) in list_files(dir)? {
        report.last_seq = report.last_seq.max(seq);
        if seq <= checkpoint {
            // Left behind by a crash between writing the checkpoint and deleting files.
            fs::remove_file(&path)?;
            continue;
        }
        report.files += 1;
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        if bytes.len() < HEADER_LEN as usize || &bytes[..8] != MAGIC {
            // The header is synced before any record of the file is acknowledged, so a file
            // without one holds nothing acknowledged.
            tracing::warn!(file = %path.display(), len = bytes.len(), "wal file has no valid header; removing it");
            report.cut_bytes += bytes.len() as u64;
            fs::remove_file(&path)?;
            continue;
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("wal file {} has format version {version}; this build reads version {VERSION}", path.display()),
            ));
        }
        let mut offset = HEADER_LEN as usize;
        let mut cut_reason = None;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            if rest.len() < RECORD_HEADER_LEN {
                cut_reason = Some("truncated record header");
                break;
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
            if len > MAX_RECORD_LEN || rest.len() < RECORD_HEADER_LEN + len as usize {
                cut_reason = Some("truncated record");
                break;
            }
            let payload = &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len as usize];
            if crc32fast::hash(payload) != crc {
                cut_reason = Some("checksum mismatch");
                break;
            }
            if !each(seq, payload) {
                cut_reason = Some("unreadable record");
                break;
            }
            report.records += 1;
            offset += RECORD_HEADER_LEN + len as usize;
        }
        if let Some(reason) = cut_reason {
            let cut = (bytes.len() - offset) as u64;
            tracing::warn!(file = %path.display(), offset, cut_bytes = cut, reason, "cutting torn wal tail");
            report.cut_bytes += cut;
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(offset as u64)?;
            file.sync_all()?;
        }
    }
    Ok(report)
}

enum Command {
    Append {
        framed: Vec<u8>,
        done: oneshot::Sender<io::Result<u64>>,
    },
    /// Starts a new file; answers with its sequence once every earlier append is synced.
    Rotate {
        done: oneshot::Sender<io::Result<u64>>,
    },
}

/// Figures the WAL thread reports.
pub trait WalObserver: Send + 'static {
    fn synced(&self, bytes: u64, records: u64);
}

/// The handle to the WAL thread.
pub struct Wal {
    tx: mpsc::UnboundedSender<Command>,
}

impl Wal {
    /// Opens a new file with sequence `seq` (which must not exist) and starts the WAL thread.
    pub fn start(dir: PathBuf, seq: u64, observer: impl WalObserver) -> io::Result<Self> {
        let file = create_file(&dir, seq)?;
        Self::spawn(WalThread { dir, file, len: HEADER_LEN, observer })
    }

    fn spawn<O: WalObserver>(thread: WalThread<O>) -> io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        thread::Builder::new().name("clew-wal".into()).spawn(move || thread.run(rx))?;
        Ok(Self { tx })
    }

    /// Appends a framed record; returns the sequence of the file it is in once it is on disk.
    pub async fn append(&self, framed: Vec<u8>) -> io::Result<u64> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Command::Append { framed, done }).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Syncs what is pending and switches to a new file, whose sequence is returned.
    pub async fn rotate(&self) -> io::Result<u64> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Command::Rotate { done }).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "wal writer has stopped")
}

fn create_file(dir: &Path, seq: u64) -> io::Result<(u64, File)> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(dir.join(file_name(seq)))?;
    file.write_all(MAGIC)?;
    file.write_all(&VERSION.to_le_bytes())?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok((seq, file))
}

/// The records written since the last sync, and who waits for it.
#[derive(Default)]
struct Group {
    waiting: Vec<oneshot::Sender<io::Result<u64>>>,
    bytes: u64,
    /// The first write error; later records of the group are not written.
    error: Option<io::Error>,
}

impl Group {
    fn add(&mut self, file: &mut File, framed: Vec<u8>, done: oneshot::Sender<io::Result<u64>>) {
        if self.error.is_none() {
            match file.write_all(&framed) {
                Ok(()) => self.bytes += framed.len() as u64,
                Err(e) => self.error = Some(e),
            }
        }
        self.waiting.push(done);
    }
}

struct WalThread<O> {
    dir: PathBuf,
    file: (u64, File),
    len: u64,
    observer: O,
}

impl<O: WalObserver> WalThread<O> {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut group = Group::default();
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append { framed, done } => group.add(&mut self.file.1, framed, done),
                    Command::Rotate { done } => {
                        let result = self.commit(&mut group).and_then(|()| self.rotate());
                        let _ = done.send(result);
                    }
                }
                if group.bytes < MAX_GROUP_BYTES as u64 {
                    next = rx.try_recv().ok();
                }
            }
            // Errors reach every waiting appender; the thread keeps serving later requests.
            let _ = self.commit(&mut group);
        }
    }

    fn commit(&mut self, group: &mut Group) -> io::Result<()> {
        if group.waiting.is_empty() {
            return Ok(());
        }
        let records = group.waiting.len() as u64;
        let bytes = group.bytes;
        let result = group.error.take().map_or(Ok(()), Err).and_then(|()| self.file.1.sync_data());
        match &result {
            Ok(()) => {
                self.len += bytes;
                self.observer.synced(bytes, records);
            }
            Err(e) => {
                tracing::error!(error = %e, file = self.file.0, "wal write failed; cutting the partial write");
                // Leave no half-written group behind for replay to trip over.
                let cut = self.file.1.set_len(self.len).and_then(|()| self.file.1.seek(SeekFrom::Start(self.len)));
                if let Err(e) = cut {
                    tracing::error!(error = %e, "cannot cut the wal back after a failed write");
                }
            }
        }
        for done in group.waiting.drain(..) {
            let _ = done.send(match &result {
                Ok(()) => Ok(self.file.0),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
        }
        group.bytes = 0;
        result
    }

    fn rotate(&mut self) -> io::Result<u64> {
        let seq = self.file.0 + 1;
        self.file = create_file(&self.dir, seq)?;
        self.len = HEADER_LEN;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;
    impl WalObserver for Quiet {
        fn synced(&self, _: u64, _: u64) {}
    }

    fn sample(n: usize) -> Vec<u8> {
        frame(&vec![n as u8; n])
    }

    fn replayed(dir: &Path) -> (Vec<usize>, ReplayReport) {
        let mut sizes = Vec::new();
        let report = replay(dir, |_, payload| {
            sizes.push(payload.len());
            true
        })
        .unwrap();
        (sizes, report)
    }

    #[tokio::test]
    async fn appended_records_replay_in_order_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path().into(), 1, Quiet).unwrap();
        assert_eq!(wal.append(sample(1)).await.unwrap(), 1);
        assert_eq!(wal.rotate().await.unwrap(), 2);
        let (a, b) = tokio::join!(wal.append(sample(2)), wal.append(sample(3)));
        a.unwrap();
        b.unwrap();
        drop(wal);
        let (mut sizes, report) = replayed(dir.path());
        sizes[1..].sort();
        assert_eq!(sizes, vec![1, 2, 3]);
        assert_eq!((report.files, report.last_seq, report.cut_bytes), (2, 2, 0));
    }

    #[tokio::test]
    async fn checkpoint_skips_and_removes_covered_files() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path().into(), 1, Quiet).unwrap();
        wal.append(sample(1)).await.unwrap();
        wal.rotate().await.unwrap();
        wal.append(sample(2)).await.unwrap();
        checkpoint(dir.path(), 1).unwrap();
        assert_eq!(list_files(dir.path()).unwrap().len(), 1);
        assert_eq!(replayed(dir.path()).0, vec![2]);
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_group_and_keeps_serving() {
        // Writes to /dev/full fail with ENOSPC, as a WAL file on a full disk would.
        let file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::spawn(WalThread { dir: dir.path().into(), file: (1, file), len: 0, observer: Quiet }).unwrap();
        let (a, b) = tokio::join!(wal.append(sample(1)), wal.append(sample(2)));
        for result in [a, b] {
            assert_eq!(result.unwrap_err().kind(), io::ErrorKind::StorageFull);
        }
        // The thread survives: a rotation to a good file brings writes back.
        assert_eq!(wal.rotate().await.unwrap(), 2);
        wal.append(sample(3)).await.unwrap();
        drop(wal);
        assert_eq!(replayed(dir.path()).0, vec![3]);
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(7));
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend(sample(5));
        let good_len = bytes.len() as u64;
        let mut torn = sample(9);
        torn.truncate(10);
        bytes.extend(torn);
        fs::write(&path, &bytes).unwrap();

        let (sizes, report) = replayed(dir.path());
        assert_eq!(sizes, vec![5]);
        assert_eq!(report.cut_bytes, 10);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);

        // A flipped bit in the last record's payload is caught by the checksum.
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend(sample(4));
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (sizes, report) = replayed(dir.path());
        assert_eq!(sizes, vec![5]);
        assert_eq!(report.cut_bytes, sample(4).len() as u64);

        // A file whose header never reached the disk is dropped.
        fs::write(dir.path().join(file_name(8)), b"CLEW").unwrap();
        let (sizes, report) = replayed(dir.path());
        assert_eq!((sizes, report.last_seq), (vec![5], 8));
        assert!(!dir.path().join(file_name(8)).exists());
    }
}
