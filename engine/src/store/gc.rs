//! Garbage collection, local ([`Store::gc`]) and remote ([`Store::gc_remote`]), and `pipe push`
//! ([`Store::push`]): what moves or goes as a whole.

use std::collections::HashSet;
use std::fs;

use super::error::io_err;
use super::records::check_record;
use super::{is_hash, now, Dir, Entry, NodeRecord, Store, StoreError, Verify};

/// What a garbage collection ([`Store::gc`], [`Store::gc_remote`]) removed, or in a dry run would remove.
#[derive(Debug, Default)]
pub struct GcStats {
    /// Objects removed.
    pub objects_removed: usize,
    /// Objects kept: a kept record names them (on a remote, also those younger than the grace period).
    pub objects_kept: usize,
    /// Node records removed.
    pub records_removed: usize,
    /// Bytes freed: objects, and locally also removed records and quarantined files.
    pub bytes_freed: u64,
    /// One line per record, object or quarantined file removed (or, in a dry run, to be removed).
    pub removed: Vec<String>,
}

/// What `pipe push` moved.
#[derive(Debug, Default)]
pub struct PushStats {
    /// Objects uploaded.
    pub objects: usize,
    /// Bytes uploaded, objects only.
    pub bytes: u64,
    /// Node records uploaded.
    pub records: usize,
    /// Refs uploaded.
    pub refs: usize,
    /// Records not pushed because an object they name is missing or corrupt here.
    pub incomplete: Vec<String>,
}

impl Store {
    /// Deletes objects no kept record references. With `live`, records whose key is not in it go
    /// first (`pipe gc --records`; the caller decides what is live). With `dry_run`, nothing is
    /// deleted and `removed` lists what would go. Call with the lock held.
    pub fn gc(&self, live: Option<&HashSet<String>>, dry_run: bool) -> Result<GcStats, StoreError> {
        let mut stats = GcStats::default();
        if !dry_run {
            self.clean_scratch(true);
            // Temp files a crash or a full disk left beside records and run records.
            for dir in [Dir::Nodes, Dir::Runs, Dir::Published, Dir::Logs] {
                for e in fs::read_dir(self.path(Entry::Dir(dir))).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if name.starts_with('.') && name.ends_with(".tmp") {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        let mut recs = self.all_records();
        if let Some(live) = live {
            recs.retain(|r| {
                let keep = live.contains(&r.key);
                if !keep {
                    let size = fs::metadata(self.record_path(&r.key)).map(|m| m.len()).unwrap_or(0);
                    stats.removed.push(format!("record {} ({}, {size} bytes)", &r.key[..12.min(r.key.len())], r.node));
                    if !dry_run {
                        self.remove_record(&r.key);
                    }
                    stats.records_removed += 1;
                    stats.bytes_freed += size;
                }
                keep
            });
        }
        // Failed attempts' logs: with --records, those of keys nothing current uses.
        for e in fs::read_dir(self.path(Entry::Dir(Dir::Logs))).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(key) = name.strip_suffix(".json") else { continue };
            if live.is_some_and(|l| !l.contains(key)) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                stats.removed.push(format!("log of a failed attempt {} ({size} bytes)", &key[..12.min(key.len())]));
                stats.bytes_freed += size;
                if !dry_run {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let live: HashSet<String> = recs.iter().flat_map(|r| r.outputs.values().map(|o| o.hash.clone())).collect();
        for dir in fs::read_dir(self.path(Entry::Dir(Dir::Objects))).into_iter().flatten().flatten() {
            for e in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let hash = name.split('.').next().unwrap_or_default();
                if !live.contains(hash) {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    stats.removed.push(format!("object {name} ({size} bytes)"));
                    if dry_run || fs::remove_file(e.path()).is_ok() {
                        stats.bytes_freed += size;
                        stats.objects_removed += 1;
                    }
                } else {
                    stats.objects_kept += 1;
                }
            }
        }
        for e in fs::read_dir(self.path(Entry::Dir(Dir::Quarantine))).into_iter().flatten().flatten() {
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            stats.removed.push(format!("quarantined {} ({size} bytes)", e.file_name().to_string_lossy()));
            stats.bytes_freed += size;
            if !dry_run {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(stats)
    }

    /// Uploads every record this cache holds that the remote lacks, each after its objects (those
    /// the remote lacks or holds at another size), and the refs. Records whose objects are not
    /// intact here are skipped and listed.
    pub fn push(&self) -> Result<PushStats, StoreError> {
        let mut stats = PushStats::default();
        let Some(r) = &self.remote else { return Ok(stats) };
        for rec in self.all_records() {
            if !is_hash(&rec.key) || check_record(&rec, &rec.key).is_err() {
                continue;
            }
            let rel = Entry::Record(&rec.key).rel();
            if r.size(&rel)?.is_some() {
                continue;
            }
            if let Some((name, _)) = rec.outputs.iter().find(|(_, o)| !matches!(self.verify_local(o), Verify::Ok)) {
                stats.incomplete.push(format!("{} (output `{name}` missing or corrupt here)", rec.node));
                continue;
            }
            for obj in rec.outputs.values() {
                if self.upload(obj)? {
                    stats.objects += 1;
                    stats.bytes += obj.size;
                }
            }
            let bytes = fs::read(self.record_path(&rec.key)).map_err(io_err(&self.record_path(&rec.key)))?;
            r.put(&rel, bytes)?;
            stats.records += 1;
        }
        for ns in fs::read_dir(self.path(Entry::Dir(Dir::Refs))).into_iter().flatten().flatten() {
            for e in fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let rel = format!("{}/{}/{}", Dir::Refs.name(), ns.file_name().to_string_lossy(), e.file_name().to_string_lossy());
                if !rel.ends_with(".json") || r.size(&rel)?.is_some() {
                    continue;
                }
                if let Ok(bytes) = fs::read(e.path()) {
                    r.put(&rel, bytes)?;
                    stats.refs += 1;
                }
            }
        }
        Ok(stats)
    }

    /// Garbage-collects the remote: deletes objects no remote record references (with `live`,
    /// first the records whose key is not in it). Only what is older than `grace_s` seconds goes:
    /// a run elsewhere uploads a node's objects before its record, and must not lose them meanwhile.
    pub fn gc_remote(&self, live: Option<&HashSet<String>>, grace_s: u64) -> Result<GcStats, StoreError> {
        let Some(r) = &self.remote else { return Ok(GcStats::default()) };
        let cutoff = now() as i64 - grace_s as i64;
        let mut stats = GcStats::default();
        let (record_files, _) = r.list(Dir::Nodes.name())?;
        let mut recs: Vec<(crate::remote::Listed, NodeRecord)> = Vec::new();
        for f in record_files {
            match r.get(&f.rel)?.map(|b| serde_json::from_slice::<NodeRecord>(&b)) {
                Some(Ok(rec)) => recs.push((f, rec)),
                // An unreadable record protects nothing; a vanished one was just deleted.
                Some(Err(e)) => tracing::warn!(record = %f.rel, "unreadable remote record ignored by gc: {e}"),
                None => {}
            }
        }
        if let Some(current) = live {
            let mut kept = Vec::new();
            for (f, rec) in recs {
                if current.contains(&rec.key) || f.modified > cutoff {
                    kept.push((f, rec));
                } else {
                    r.delete(&f.rel)?;
                    stats.records_removed += 1;
                }
            }
            recs = kept;
        }
        let live: HashSet<&str> = recs.iter().flat_map(|(_, rec)| rec.outputs.values().map(|o| o.hash.as_str())).collect();
        let (_, shards) = r.list(Dir::Objects.name())?;
        for shard in shards {
            for f in r.list(shard.trim_end_matches('/'))?.0 {
                let name = f.rel.rsplit('/').next().unwrap_or_default();
                let hash = name.split('.').next().unwrap_or_default();
                if live.contains(hash) || f.modified > cutoff {
                    stats.objects_kept += 1;
                } else {
                    r.delete(&f.rel)?;
                    stats.objects_removed += 1;
                    stats.bytes_freed += f.size;
                }
            }
        }
        Ok(stats)
    }
}
