//! Moving a store forward from an older schema version, once, at open.

use std::path::Path;

use super::StoreError;

/// Schema 1 kept events and log lines in the one database. They move to `history/`, and
/// the index database is rewritten without them (sled does not give back the space of
/// dropped trees, and its start-up time grows with the file), then swapped in.
pub(super) fn to_2(dir: &Path) -> Result<(), StoreError> {
    let io = |path: &Path, source| StoreError::Io { path: path.to_path_buf(), source };
    let (old_path, new_path, history_path) = (dir.join("db"), dir.join("db.v2"), dir.join("history"));
    if new_path.exists() {
        // A migration that died half-way: start it again.
        std::fs::remove_dir_all(&new_path).map_err(|e| io(&new_path, e))?;
    }
    {
        let old = sled::Config::new().path(&old_path).flush_every_ms(None).open()?;
        let history = sled::Config::new().path(&history_path).flush_every_ms(None).open()?;
        let index = sled::Config::new().path(&new_path).flush_every_ms(None).open()?;
        for name in old.tree_names() {
            if name.as_ref() == b"__sled__default" {
                continue;
            }
            let to = match name.as_ref() {
                b"events" | b"logs" => history.open_tree(&name)?,
                _ => index.open_tree(&name)?,
            };
            let from = old.open_tree(&name)?;
            let mut batch = sled::Batch::default();
            for (n, item) in from.iter().enumerate() {
                let (k, v) = item?;
                batch.insert(k, v);
                if n % 10_000 == 9_999 {
                    to.apply_batch(std::mem::take(&mut batch))?;
                }
            }
            to.apply_batch(batch)?;
            tracing::info!(tree = %String::from_utf8_lossy(&name), entries = from.len(), "migrated to schema 2");
        }
        index.open_tree("meta")?.insert("schema_version", &2u32.to_be_bytes())?;
        history.flush()?;
        index.flush()?;
    }
    // The swap: the old database stays until the new one is in place.
    let retired = dir.join("db.v1");
    std::fs::rename(&old_path, &retired).map_err(|e| io(&old_path, e))?;
    std::fs::rename(&new_path, &old_path).map_err(|e| io(&new_path, e))?;
    std::fs::remove_dir_all(&retired).map_err(|e| io(&retired, e))?;
    Ok(())
}

/// Finishes a swap that a crash interrupted: the rewritten database was complete before
/// the first rename, so whichever step was next is done now.
pub(super) fn finish_interrupted(dir: &Path) -> Result<(), StoreError> {
    let io = |path: &Path, source| StoreError::Io { path: path.to_path_buf(), source };
    let (current, fresh, retired) = (dir.join("db"), dir.join("db.v2"), dir.join("db.v1"));
    if retired.exists() {
        if !current.exists() && fresh.exists() {
            std::fs::rename(&fresh, &current).map_err(|e| io(&fresh, e))?;
        }
        if current.exists() {
            std::fs::remove_dir_all(&retired).map_err(|e| io(&retired, e))?;
        }
    }
    Ok(())
}
