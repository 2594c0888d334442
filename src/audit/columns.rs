//! Reading the columns of a log that may have been tampered with: a value of the wrong
//! type (a MAC stored as text, a body as a blob) is noted by column name, so verification
//! names the record as altered instead of stopping with a database error.

use rusqlite::types::{Type, ValueRef};

/// One row's columns, read leniently; `wrong` lists the columns whose type was not the
/// one the schema writes.
pub struct Columns<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    pub wrong: Vec<String>,
}

impl<'a, 'r> Columns<'a, 'r> {
    pub fn new(row: &'a rusqlite::Row<'r>) -> Self {
        Self {
            row,
            wrong: Vec::new(),
        }
    }

    /// The column's value when `expect` accepts it (NULL is accepted as `None` when
    /// `nullable`); otherwise notes what it holds.
    fn typed<T>(
        &mut self,
        index: usize,
        name: &str,
        nullable: bool,
        expect: impl FnOnce(ValueRef<'_>) -> Option<T>,
    ) -> Option<T> {
        let value = match self.row.get_ref(index) {
            Ok(value) => value,
            Err(e) => {
                self.wrong.push(format!("`{name}` cannot be read ({e})"));
                return None;
            }
        };
        if nullable && value == ValueRef::Null {
            return None;
        }
        let held = match value.data_type() {
            Type::Null => "NULL",
            Type::Integer => "an INTEGER",
            Type::Real => "a REAL",
            Type::Text => "TEXT",
            Type::Blob => "a BLOB",
        };
        let found = expect(value);
        if found.is_none() {
            self.wrong.push(format!("`{name}` holds {held}"));
        }
        found
    }

    /// An INTEGER column (0 when mistyped).
    pub fn integer(&mut self, index: usize, name: &str) -> i64 {
        self.typed(index, name, false, |v| v.as_i64().ok())
            .unwrap_or(0)
    }

    /// An INTEGER column that may be NULL.
    pub fn optional_integer(&mut self, index: usize, name: &str) -> Option<i64> {
        self.typed(index, name, true, |v| v.as_i64().ok())
    }

    /// A TEXT column (empty when mistyped).
    pub fn text(&mut self, index: usize, name: &str) -> String {
        self.optional_text_of(index, name, false)
            .unwrap_or_default()
    }

    /// A TEXT column that may be NULL.
    pub fn optional_text(&mut self, index: usize, name: &str) -> Option<String> {
        self.optional_text_of(index, name, true)
    }

    fn optional_text_of(&mut self, index: usize, name: &str, nullable: bool) -> Option<String> {
        self.typed(index, name, nullable, |v| {
            v.as_str().ok().map(str::to_string)
        })
    }

    /// A BLOB column (empty when mistyped).
    pub fn blob(&mut self, index: usize, name: &str) -> Vec<u8> {
        self.typed(index, name, false, |v| v.as_blob().ok().map(<[u8]>::to_vec))
            .unwrap_or_default()
    }

    /// A BLOB column that may be NULL.
    pub fn optional_blob(&mut self, index: usize, name: &str) -> Option<Vec<u8>> {
        self.typed(index, name, true, |v| v.as_blob().ok().map(<[u8]>::to_vec))
    }
}
