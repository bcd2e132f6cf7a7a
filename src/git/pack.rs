//! A Git pack file (version 2) written from whole objects, with no
//! compressor: each object's zlib stream is made of stored (uncompressed)
//! deflate blocks. A deploy commit's objects are a few KiB, so compression
//! would save little and cost a compressor's state (hundreds of KiB per
//! stream in libgit2's packbuilder).
//!
//! Layout: `PACK`, version 2 and the object count (big-endian 32-bit),
//! then per object its type and size header (type in bits 4-6 of the first
//! byte, size in 4 then 7-bit groups, low groups first, the high bit set on
//! every byte but the last) and its content as a zlib stream; then the
//! SHA-1 of everything before it.

use sha1::{Digest, Sha1};

/// The kind of a packed object (the pack's type numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackObjectKind {
    /// A commit (type 1).
    Commit,
    /// A tree (type 2).
    Tree,
    /// A blob (type 3).
    Blob,
}

impl PackObjectKind {
    fn type_number(self) -> u8 {
        match self {
            PackObjectKind::Commit => 1,
            PackObjectKind::Tree => 2,
            PackObjectKind::Blob => 3,
        }
    }
}

/// Largest content of one stored deflate block.
const STORED_BLOCK: usize = 0xffff;

/// The pack holding `objects` (kind, content as Git hashes it, without
/// the `<type> <size>\0` header), in that order.
pub fn write_pack(objects: &[(PackObjectKind, &[u8])]) -> Vec<u8> {
    let payload: usize = objects
        .iter()
        .map(|(_, content)| content.len() + content.len() / STORED_BLOCK * 5 + 32)
        .sum();
    let mut pack = Vec::with_capacity(12 + payload + 20);
    pack.extend_from_slice(b"PACK");
    pack.extend_from_slice(&2u32.to_be_bytes());
    // A deploy commit has a handful of objects; saturate rather than wrap.
    let count = u32::try_from(objects.len()).unwrap_or(u32::MAX);
    pack.extend_from_slice(&count.to_be_bytes());
    for (kind, content) in objects {
        object_header(&mut pack, *kind, content.len());
        zlib_stored(&mut pack, content);
    }
    let digest = Sha1::digest(&pack);
    pack.extend_from_slice(&digest);
    pack
}

/// The type and size header of one object.
fn object_header(out: &mut Vec<u8>, kind: PackObjectKind, size: usize) {
    let mut size = size as u64;
    let mut byte = (kind.type_number() << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size != 0 {
        out.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(byte);
}

/// `data` as a zlib stream of stored deflate blocks (RFC 1950, 1951 §3.2.4).
fn zlib_stored(out: &mut Vec<u8>, data: &[u8]) {
    // CMF: deflate, 32 KiB window; FLG: no dictionary, fastest level, and
    // the check bits that make 0x7801 a multiple of 31.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = data.chunks(STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        // One final empty block.
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        out.push(u8::from(last));
        // At most STORED_BLOCK, so it fits.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
}

/// The Adler-32 checksum of `data` (RFC 1950 §8.2).
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5552 bytes is the most that cannot overflow `b` before the modulo.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn adler32_of_known_inputs() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        let long = vec![0xffu8; 100_000];
        // Reference: the definition, with wide integers.
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &long {
            a = (a + u64::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(u64::from(adler32(&long)), (b << 16) | a);
    }

    #[test]
    fn object_headers_encode_type_and_size() {
        let header = |kind, size| {
            let mut out = Vec::new();
            object_header(&mut out, kind, size);
            out
        };
        assert_eq!(header(PackObjectKind::Blob, 0), [0x30]);
        assert_eq!(header(PackObjectKind::Blob, 15), [0x3f]);
        assert_eq!(header(PackObjectKind::Commit, 16), [0x90, 0x01]);
        assert_eq!(header(PackObjectKind::Tree, 100_000), [0xa0, 0xea, 0x30]);
    }

    #[test]
    fn the_pack_starts_with_its_header_and_ends_with_its_sha1() {
        let pack = write_pack(&[(PackObjectKind::Blob, b"hello\n")]);
        assert_eq!(pack.get(..12), Some(&b"PACK\0\0\0\x02\0\0\0\x01"[..]));
        let (body, trailer) = pack.split_at(pack.len() - 20);
        assert_eq!(trailer, Sha1::digest(body).as_slice());
    }

    /// `git index-pack --strict` and `git verify-pack` accept a pack of a
    /// commit, its tree and blobs (one empty, one over a stored block),
    /// and the objects read back are the ones written.
    #[test]
    fn git_accepts_the_pack() {
        let git_ok = Command::new("git")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !git_ok {
            println!("skipped: no git executable");
            return;
        }
        let scratch = tempfile::tempdir().expect("scratch");
        let repo = git2::Repository::init_bare(scratch.path()).expect("scratch repository");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let blobs = [b"FROM x\n".to_vec(), Vec::new(), big];
        let mut tree = repo.treebuilder(None).expect("treebuilder");
        let mut ids = Vec::new();
        for (i, content) in blobs.iter().enumerate() {
            let id = repo.blob(content).expect("blob");
            tree.insert(format!("f{i}"), id, 0o100_644).expect("insert");
            ids.push(id);
        }
        let tree_id = tree.write().expect("tree");
        let sig = git2::Signature::now("a", "a@example.test").expect("sig");
        let tree_obj = repo.find_tree(tree_id).expect("find tree");
        let commit_id = repo
            .commit(None, &sig, &sig, "m\n", &tree_obj, &[])
            .expect("commit");
        let odb = repo.odb().expect("odb");
        let read = |id| odb.read(id).expect("read").data().to_vec();
        let (commit, tree_bytes) = (read(commit_id), read(tree_id));
        let mut objects = vec![
            (PackObjectKind::Commit, commit.as_slice()),
            (PackObjectKind::Tree, tree_bytes.as_slice()),
        ];
        objects.extend(blobs.iter().map(|b| (PackObjectKind::Blob, b.as_slice())));
        let pack = write_pack(&objects);

        let target = tempfile::tempdir().expect("target");
        let status = Command::new("git")
            .args(["init", "--quiet", "--bare"])
            .arg(target.path())
            .status()
            .expect("git init");
        assert!(status.success());
        let mut child = Command::new("git")
            .args(["index-pack", "--stdin", "--strict"])
            .current_dir(target.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("git index-pack");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&pack)
            .expect("write pack");
        let output = child.wait_with_output().expect("index-pack");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let packs: Vec<_> = std::fs::read_dir(target.path().join("objects/pack"))
            .expect("pack dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "idx"))
            .collect();
        assert_eq!(packs.len(), 1, "{packs:?}");
        let verified = Command::new("git")
            .arg("verify-pack")
            .args(&packs)
            .output()
            .expect("verify-pack");
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stderr)
        );
        let copy = git2::Repository::open_bare(target.path()).expect("open");
        let commit = copy.find_commit(commit_id).expect("commit in the pack");
        assert_eq!(commit.tree_id(), tree_id);
        for (id, content) in ids.iter().zip(&blobs) {
            assert_eq!(copy.find_blob(*id).expect("blob").content(), content);
        }
    }
}
