//! The client directory: who is calling. Reads come from an in-memory cache (no database
//! round trip on the call path); writes go to the database first and then to the cache. The
//! writer thread reloads the cache when the database's `directory_version` moves (a change
//! made by another process, such as `switchboard clients import`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::db::Db;
use crate::model::{Client, ClientType, Money, normalize_number};
use crate::{StoreError, clock};

/// The expected CSV header.
pub const CSV_HEADER: [&str; 6] = [
    "number",
    "name",
    "type",
    "manager",
    "region",
    "overdue_debt",
];

#[derive(Debug, Default)]
struct CacheInner {
    /// Directory version the cache reflects; -1 before the first load.
    version: i64,
    clients: HashMap<String, Client>,
}

/// The in-memory copy of the directory, shared by every handle and the writer thread.
#[derive(Debug)]
pub(crate) struct DirectoryCache {
    inner: RwLock<CacheInner>,
}

impl Default for DirectoryCache {
    fn default() -> Self {
        DirectoryCache {
            inner: RwLock::new(CacheInner {
                version: -1,
                clients: HashMap::new(),
            }),
        }
    }
}

impl DirectoryCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheInner> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters more than serving stale data, so poisoning is ignored.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheInner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn version(&self) -> i64 {
        self.read().version
    }

    /// Replaces everything with a snapshot, unless the cache already reflects a newer version.
    pub(crate) fn replace(&self, version: i64, clients: Vec<Client>) {
        let mut inner = self.write();
        if version < inner.version {
            return;
        }
        inner.version = version;
        inner.clients = clients.into_iter().map(|c| (c.number.clone(), c)).collect();
    }

    /// Applies a change this process made as `version`. The version is taken only when it is
    /// the next one; otherwise another change is missing and the next refresh reloads.
    fn apply(&self, version: i64, upserts: Vec<Client>, delete: Option<&str>) {
        let mut inner = self.write();
        for c in upserts {
            inner.clients.insert(c.number.clone(), c);
        }
        if let Some(number) = delete {
            inner.clients.remove(number);
        }
        if inner.version.checked_add(1) == Some(version) {
            inner.version = version;
        }
    }
}

/// Outcome of a CSV import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows written to the directory.
    pub imported: usize,
    /// Rows refused: (1-based line number, reason).
    pub errors: Vec<(usize, String)>,
}

impl ImportReport {
    /// True when every row was imported (the CLI exits non-zero otherwise).
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Handle on the client directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Directory {
    db: Db,
    cache: Arc<DirectoryCache>,
}

impl Directory {
    pub(crate) fn new(db: Db, cache: Arc<DirectoryCache>) -> Directory {
        Directory { db, cache }
    }

    /// Looks a number up in the cache (the number is normalised first). Never touches the
    /// database. `None` for unknown or malformed numbers: the caller treats them as `new`.
    pub fn get(&self, number: &str) -> Option<Client> {
        let number = normalize_number(number).ok()?;
        self.cache.read().clients.get(&number).cloned()
    }

    /// How many clients the cache holds.
    pub fn len(&self) -> usize {
        self.cache.read().clients.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every client in the cache, sorted by number.
    pub fn all(&self) -> Vec<Client> {
        let mut all: Vec<Client> = self.cache.read().clients.values().cloned().collect();
        all.sort_by(|a, b| a.number.cmp(&b.number));
        all
    }

    /// Inserts or replaces a client (its number is normalised). Returns the stored client.
    pub async fn upsert(&self, client: Client) -> Result<Client, StoreError> {
        let client = validate(client)?;
        let stored = self
            .db
            .upsert_clients(std::slice::from_ref(&client), clock::now_utc())
            .await?;
        if let Some(version) = stored {
            self.cache.apply(version, vec![client.clone()], None);
        }
        Ok(client)
    }

    /// Removes a client; returns whether it existed.
    pub async fn delete(&self, number: &str) -> Result<bool, StoreError> {
        let number = normalize_number(number)?;
        match self.db.delete_client(&number).await? {
            Some(version) => {
                self.cache.apply(version, Vec::new(), Some(&number));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reloads the cache from the database now.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let (version, clients) = self.db.load_directory().await?;
        self.cache.replace(version, clients);
        Ok(())
    }

    /// Imports a CSV file as it is (see [`Directory::import_csv_with`]).
    pub async fn import_csv(&self, path: &Path) -> Result<ImportReport, StoreError> {
        self.import_csv_with(path, &|n: &str| n.to_owned()).await
    }

    /// Imports a CSV file with the header `number,name,type,manager,region,overdue_debt`,
    /// every number passed through `renumber` (the server's `[numbers]` rules, so that
    /// "091 555 0001" is stored as calls from it are looked up). Good rows are written in one
    /// transaction; bad rows are reported with their line numbers and skipped. A wrong header
    /// imports nothing.
    pub async fn import_csv_with(
        &self,
        path: &Path,
        renumber: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<ImportReport, StoreError> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|source| StoreError::Io {
                what: format!("read {}", path.display()),
                source,
            })?;
        let (clients, errors) = parse_csv_with(&text, renumber);
        let imported = clients.len();
        if let Some(version) = self.db.upsert_clients(&clients, clock::now_utc()).await? {
            self.cache.apply(version, clients, None);
        }
        Ok(ImportReport { imported, errors })
    }
}

fn validate(mut c: Client) -> Result<Client, StoreError> {
    c.number = normalize_number(&c.number)?;
    c.name = c.name.trim().to_owned();
    if c.name.is_empty() {
        return Err(StoreError::InvalidValue {
            what: "client name",
            value: String::new(),
            expected: "a non-empty name".into(),
        });
    }
    let blank_to_none =
        |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    c.manager = blank_to_none(c.manager);
    c.region = blank_to_none(c.region);
    Ok(c)
}

/// Splits CSV text into records of fields, RFC 4180 style: `"` quotes a field, `""` is a
/// quote inside one, a quoted field may span lines. Each record carries the line it starts on.
/// Written here rather than taken from a CSV crate: the format is six known columns, and the
/// importer needs line numbers for its report.
fn split_csv(text: &str) -> Vec<(usize, Result<Vec<String>, String>)> {
    let mut out = Vec::new();
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut error = None;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    error = Some("unterminated quoted field".to_owned());
                }
                fields.push(std::mem::take(&mut field));
                break;
            };
            match c {
                '"' if quoted => {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                }
                '"' if field.is_empty() => quoted = true,
                '\n' if quoted => {
                    line += 1;
                    field.push('\n');
                }
                '\n' => {
                    line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                '\r' if !quoted && chars.peek() == Some(&'\n') => {}
                ',' if !quoted => fields.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        let blank = fields.len() == 1 && fields.first().is_some_and(|f| f.trim().is_empty());
        if !blank || error.is_some() {
            out.push((start, error.map_or(Ok(fields), Err)));
        }
    }
    out
}

fn parse_row(fields: &[String]) -> Result<Client, String> {
    let [number, name, ty, manager, region, debt] = fields else {
        return Err(format!(
            "expected {} fields ({}), found {}",
            CSV_HEADER.len(),
            CSV_HEADER.join(","),
            fields.len()
        ));
    };
    let client_type: ClientType = ty.trim().parse().map_err(|e: StoreError| e.to_string())?;
    let debt = debt.trim();
    let overdue_debt = if debt.is_empty() {
        Money::ZERO
    } else {
        debt.parse()
            .map_err(|e: StoreError| format!("overdue_debt: {e}"))?
    };
    validate(Client {
        number: number.clone(),
        name: name.clone(),
        client_type,
        manager: Some(manager.clone()),
        region: Some(region.clone()),
        overdue_debt,
    })
    .map_err(|e| e.to_string())
}

/// [`parse_csv_with`] without renumbering.
#[cfg(test)]
pub(crate) fn parse_csv(text: &str) -> (Vec<Client>, Vec<(usize, String)>) {
    parse_csv_with(text, &|n: &str| n.to_owned())
}

/// Parses the whole file: good clients and (line, reason) for bad rows. Every number passes
/// through `renumber` before the duplicate check (two spellings of one number are one client).
fn parse_csv_with(
    text: &str,
    renumber: &(dyn Fn(&str) -> String + Sync),
) -> (Vec<Client>, Vec<(usize, String)>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = split_csv(text).into_iter();
    let mut errors = Vec::new();
    match rows.next() {
        None => {
            errors.push((
                1,
                format!("empty file: expected the header {}", CSV_HEADER.join(",")),
            ));
            return (Vec::new(), errors);
        }
        Some((line, header)) => {
            let ok = header.as_ref().is_ok_and(|h| {
                h.len() == CSV_HEADER.len()
                    && h.iter()
                        .zip(CSV_HEADER)
                        .all(|(got, want)| got.trim().eq_ignore_ascii_case(want))
            });
            if !ok {
                errors.push((
                    line,
                    format!(
                        "bad header: expected {} (nothing imported)",
                        CSV_HEADER.join(",")
                    ),
                ));
                return (Vec::new(), errors);
            }
        }
    }
    let mut clients: Vec<Client> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, row) in rows {
        let client = row.and_then(|fields| parse_row(&fields));
        match client {
            Ok(mut c) => {
                // The rules turn a valid number into another valid one; kept if they do not.
                if let Ok(n) = normalize_number(&renumber(&c.number)) {
                    c.number = n;
                }
                if let Some(first) = seen.get(&c.number) {
                    errors.push((
                        line,
                        format!("number {} already given on line {first}", c.number),
                    ));
                } else {
                    seen.insert(c.number.clone(), line);
                    clients.push(c);
                }
            }
            Err(e) => errors.push((line, e)),
        }
    }
    (clients, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_parsed_and_bad_ones_reported_by_line() {
        let text = "number,name,type,manager,region,overdue_debt\r\n\
                    +1 (555) 000-1,\"Acme, Inc.\",key,ana,north,0\r\n\
                    5550002,Bolt,vip,,,\n\
                    \n\
                    5550003,Cog,retail,,,12.5\n\
                    5550004,Dyn,retail\n\
                    55-50-003,Cog again,retail,,,\n\
                    abc,Bad number,new,,,\n\
                    5550005,,new,,,\n\
                    5550006,Debt,regional,marko,south,-4\n\
                    \"5550007\",\"Multi\nline\",marketer,,,\n";
        let (clients, errors) = parse_csv(text);
        let numbers: Vec<&str> = clients.iter().map(|c| c.number.as_str()).collect();
        assert_eq!(numbers, ["+15550001", "5550003", "5550007"]);
        assert_eq!(clients[0].name, "Acme, Inc.");
        assert_eq!(clients[0].manager.as_deref(), Some("ana"));
        assert_eq!(clients[1].overdue_debt.cents(), 1250);
        assert_eq!(clients[1].manager, None);
        assert_eq!(clients[2].name, "Multi\nline");
        let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 6, 7, 8, 9, 10], "{errors:?}");
        assert!(errors[0].1.contains("vip") && errors[0].1.contains("own_outlet"));
        assert!(errors[1].1.contains("expected 6 fields"));
        assert!(errors[2].1.contains("line 5"));
    }

    #[test]
    fn a_wrong_header_imports_nothing() {
        let (clients, errors) = parse_csv("phone,name\n5550001,A\n");
        assert!(clients.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 1);
        let (_, errors) = parse_csv("");
        assert_eq!(errors[0].0, 1);
    }

    #[test]
    fn cache_takes_only_the_next_version_from_local_changes() {
        let cache = DirectoryCache::default();
        cache.replace(3, Vec::new());
        let c = Client {
            number: "1".into(),
            name: "A".into(),
            client_type: ClientType::Key,
            manager: None,
            region: None,
            overdue_debt: Money::ZERO,
        };
        cache.apply(5, vec![c.clone()], None); // version 4 is missing
        assert_eq!(cache.version(), 3);
        cache.replace(5, vec![c]);
        assert_eq!(cache.version(), 5);
        cache.apply(6, Vec::new(), Some("1"));
        assert_eq!(cache.version(), 6);
        assert!(cache.read().clients.is_empty());
        cache.replace(4, Vec::new()); // stale snapshot ignored
        assert_eq!(cache.version(), 6);
    }
}
