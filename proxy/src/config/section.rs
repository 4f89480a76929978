//! Reading a parsed TOML document table by table, collecting every error on the way.
//!
//! A settings type reads its keys from a [`Section`]; a key that is missing keeps the type's
//! default, a bad one is recorded (key, line, what was expected) and reading goes on, and when
//! the section is dropped every key nobody asked for is recorded as unknown. The document is
//! parsed by `toml_edit`, which keeps the position of every key and value.

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;

use toml_edit::{Item, TableLike, Value};

use super::value::{Problem, Setting};
use super::ConfigError;

/// What every section of one file shares: its text (for line numbers), the directory relative
/// paths resolve against, and the errors found so far.
pub(crate) struct Ctx<'a> {
    text: &'a str,
    base: &'a Path,
    errors: RefCell<Vec<ConfigError>>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(text: &'a str, base: &'a Path) -> Ctx<'a> {
        Ctx {
            text,
            base,
            errors: RefCell::new(Vec::new()),
        }
    }

    /// Records an error at `span` (a line is only given when the position is known).
    pub(super) fn error(&self, key: String, span: Option<Range<usize>>, message: String) {
        let line = span.map(|s| line_of(self.text, s.start));
        self.errors.borrow_mut().push(ConfigError {
            file: None,
            line,
            key,
            message,
        });
    }

    /// Every error recorded, in the order of the file.
    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        let mut errors = self.errors.into_inner();
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        errors
    }
}

/// 1-based line number of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// One table of the file (or a stand-in for one the file does not have).
pub(crate) struct Section<'a> {
    ctx: &'a Ctx<'a>,
    /// Dotted path of the table (`upstream`, `index[1]`); empty for the top level.
    path: String,
    table: Option<&'a dyn TableLike>,
    /// Where the table starts, for errors about a key it lacks.
    span: Option<Range<usize>>,
    /// The keys a settings type asked for; the others are unknown.
    asked: Vec<&'static str>,
}

impl<'a> Section<'a> {
    /// The top level of a document.
    pub(super) fn root(ctx: &'a Ctx<'a>, table: &'a dyn TableLike) -> Section<'a> {
        Section {
            ctx,
            path: String::new(),
            table: Some(table),
            span: None,
            asked: Vec::new(),
        }
    }

    /// True when the file has this table.
    pub(super) fn is_present(&self) -> bool {
        self.table.is_some()
    }

    /// The dotted key of `key` in this table.
    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The item under `key`, recording that it was asked for.
    fn item(&mut self, key: &'static str) -> Option<&'a Item> {
        self.asked.push(key);
        self.table?.get(key).filter(|i| !i.is_none())
    }

    fn problem<T: Setting>(&self, key: &str, span: Option<Range<usize>>, problem: Problem) {
        let message = match problem {
            Problem::Type => format!("expected {}", T::EXPECTED),
            Problem::Invalid(message) => message,
        };
        self.ctx.error(self.key(key), span, message);
    }

    /// A leaf value of `key`, if the file has one and it is valid.
    pub(super) fn get<T: Setting>(&mut self, key: &'static str) -> Option<T> {
        let item = self.item(key)?;
        let Some(value) = item.as_value() else {
            self.problem::<T>(key, item.span(), Problem::Type);
            return None;
        };
        match T::read(value, self.ctx.base) {
            Ok(v) => Some(v),
            Err(p) => {
                self.problem::<T>(key, value.span(), p);
                None
            }
        }
    }

    /// Overwrites `slot` (holding the default) with the file's value of `key`, if valid.
    pub(super) fn set<T: Setting>(&mut self, key: &'static str, slot: &mut T) {
        if let Some(v) = self.get(key) {
            *slot = v;
        }
    }

    /// A key the table must have.
    pub(super) fn require<T: Setting>(&mut self, key: &'static str) -> Option<T> {
        let present = self.table.is_some_and(|t| t.contains_key(key));
        let v = self.get(key);
        if !present {
            let message = format!("missing; expected {}", T::EXPECTED);
            self.ctx.error(self.key(key), self.span.clone(), message);
        }
        v
    }

    /// A list of values (each bad element is an error of its own, at its own line).
    pub(super) fn list<T: Setting>(&mut self, key: &'static str) -> Vec<T> {
        let Some(item) = self.item(key) else {
            return Vec::new();
        };
        let Some(array) = item.as_array() else {
            let message = format!("expected a list of {}", T::EXPECTED);
            self.ctx.error(self.key(key), item.span(), message);
            return Vec::new();
        };
        array
            .iter()
            .filter_map(|v| match T::read(v, self.ctx.base) {
                Ok(v) => Some(v),
                Err(p) => {
                    self.problem::<T>(key, v.span(), p);
                    None
                }
            })
            .collect()
    }

    /// A table whose keys are data (`[upstream.resolve]`): every valid entry, with the span of
    /// its value for later checks.
    pub(super) fn entries<T: Setting>(
        &mut self,
        key: &'static str,
    ) -> Vec<(String, Option<Range<usize>>, T)> {
        let Some(item) = self.item(key) else {
            return Vec::new();
        };
        let Some(table) = item.as_table_like() else {
            let message = format!("expected a table of {}", T::EXPECTED);
            self.ctx.error(self.key(key), item.span(), message);
            return Vec::new();
        };
        let path = self.key(key);
        let mut out = Vec::new();
        for (name, item) in table.iter() {
            let entry = format!("{path}.\"{name}\"");
            let Some(value) = item.as_value() else {
                let message = format!("expected {}", T::EXPECTED);
                self.ctx.error(entry, item.span(), message);
                continue;
            };
            match T::read(value, self.ctx.base) {
                Ok(v) => out.push((name.to_owned(), value.span(), v)),
                Err(Problem::Type) => {
                    let message = format!("expected {}", T::EXPECTED);
                    self.ctx.error(entry, value.span(), message);
                }
                Err(Problem::Invalid(message)) => self.ctx.error(entry, value.span(), message),
            }
        }
        out
    }

    /// The sub-table `key` deserialized with serde (a rule's table, whose keys the rule's own
    /// file declares): `None` when the file lacks it; an error is recorded at the line of the
    /// value it is about, or of the table.
    pub(super) fn serde<T: serde::de::DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        let item = self.item(key)?;
        let at = self.table_span(key, item);
        let value = match item.clone() {
            Item::Table(t) => Value::InlineTable(t.into_inline_table()),
            Item::Value(v) => v,
            _ => {
                self.error(key, at, "expected a table".to_owned());
                return None;
            }
        };
        match T::deserialize(serde::de::IntoDeserializer::into_deserializer(value)) {
            Ok(t) => Some(t),
            Err(e) => {
                let message = e.message().trim_end_matches('\n').replace('\n', "; ");
                self.error(key, e.span().or(at), message);
                None
            }
        }
    }

    /// The sub-table `key`, read by `read`; a table the file lacks reads as empty.
    pub(super) fn section<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&mut Section<'a>) -> T,
    ) -> T {
        let item = self.item(key);
        let table = item.and_then(Item::as_table_like);
        if let (Some(item), None) = (item, table) {
            self.ctx
                .error(self.key(key), item.span(), "expected a table".to_owned());
        }
        let mut sub = Section {
            ctx: self.ctx,
            path: self.key(key),
            table,
            span: item.and_then(|i| self.table_span(key, i)),
            asked: Vec::new(),
        };
        read(&mut sub)
    }

    /// Every table of the array `key` (`[[index]]`), each read by `read`.
    pub(super) fn sections<T>(
        &mut self,
        key: &'static str,
        mut read: impl FnMut(&mut Section<'a>) -> T,
    ) -> Vec<T> {
        let Some(item) = self.item(key) else {
            return Vec::new();
        };
        let tables: Vec<(&'a dyn TableLike, Option<Range<usize>>)> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| (t as &dyn TableLike, t.span())).collect(),
            Item::Value(Value::Array(a)) if a.iter().all(Value::is_inline_table) => a
                .iter()
                .filter_map(|v| v.as_inline_table().map(|t| (t as &dyn TableLike, t.span())))
                .collect(),
            other => {
                let message = "expected tables ([[".to_owned() + key + "]])";
                self.ctx.error(self.key(key), other.span(), message);
                return Vec::new();
            }
        };
        tables
            .into_iter()
            .enumerate()
            .map(|(i, (table, span))| {
                let mut sub = Section {
                    ctx: self.ctx,
                    path: format!("{}[{i}]", self.key(key)),
                    table: Some(table),
                    span,
                    asked: Vec::new(),
                };
                read(&mut sub)
            })
            .collect()
    }

    /// Where a sub-table begins: its header, or the key naming it.
    fn table_span(&self, key: &str, item: &Item) -> Option<Range<usize>> {
        item.span()
            .or_else(|| self.table?.key(key).and_then(toml_edit::Key::span))
    }

    /// Records an error about a key of this table (checks beyond a single value's form).
    pub(super) fn error(&self, key: &str, span: Option<Range<usize>>, message: String) {
        self.ctx.error(self.key(key), span, message);
    }

    /// The span of `key`'s value in the sub-table `table`.
    pub(super) fn span_in(&self, table: &str, key: &str) -> Option<Range<usize>> {
        self.table?.get(table)?.as_table_like()?.get(key)?.span()
    }

    /// The span of `key`'s value, for errors found after reading it.
    pub(super) fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.table?.get(key)?.span()
    }
}

impl Drop for Section<'_> {
    /// Every key of the table nobody asked for is an error: a misspelt key must not be
    /// silently ignored.
    fn drop(&mut self) {
        let Some(table) = self.table else {
            return;
        };
        for (name, item) in table.iter() {
            if self.asked.contains(&name) {
                continue;
            }
            let span = table
                .key(name)
                .and_then(toml_edit::Key::span)
                .or_else(|| item.span());
            let known = self.asked.join(", ");
            let message = if known.is_empty() {
                "unknown key".to_owned()
            } else {
                format!("unknown key (this table takes: {known})")
            };
            self.ctx.error(self.key(name), span, message);
        }
    }
}
