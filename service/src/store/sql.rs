//! What sqlx's `Any` driver lacks for SQL written once for SQLite and PostgreSQL: a
//! query builder with placeholders both backends read, and flags that are integers in
//! both.

use std::fmt::Write;

use sqlx::any::{AnyArguments, AnyTypeInfo, AnyValueRef};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Any, AnyConnection, Arguments, Decode, Encode, Type};

use crate::error::{Result, ServiceError};

/// A statement built piece by piece, every value bound.
pub struct Sql<'q> {
    text: String,
    args: AnyArguments<'q>,
    count: usize,
    /// `?` rather than `$N`: SQLite looks a numbered placeholder up by a linear search,
    /// so a statement with 27,000 of them (a batch of generations) spends most of a
    /// second in placeholders alone; `?` costs nothing. PostgreSQL reads only `$N`.
    anonymous: bool,
    error: Option<BoxDynError>,
}

impl<'q> Sql<'q> {
    /// A statement with `$1`, `$2`… placeholders, which both backends read.
    pub fn new(text: impl Into<String>) -> Self {
        Sql { text: text.into(), args: AnyArguments::default(), count: 0, anonymous: false, error: None }
    }

    /// A statement for `conn`, with the placeholders its backend reads fastest.
    pub fn on(conn: &AnyConnection, text: impl Into<String>) -> Self {
        Sql { anonymous: conn.backend_name() != "PostgreSQL", ..Sql::new(text) }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn bind<T: 'q + Encode<'q, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        self.count += 1;
        if self.anonymous {
            self.text.push('?');
        } else {
            let _ = write!(self.text, "${}", self.count);
        }
        if let Err(e) = self.args.add(value)
            && self.error.is_none()
        {
            self.error = Some(e);
        }
        self
    }

    /// `(v1, v2, …)`, one placeholder per value `row` binds through the tuple it gets.
    pub fn tuple(&mut self, row: impl FnOnce(&mut Tuple<'_, 'q>)) -> &mut Self {
        self.text.push('(');
        row(&mut Tuple { sql: self, first: true });
        self.text.push(')');
        self
    }

    /// The statement and its arguments, ready for `sqlx::query_with` and friends.
    pub fn build(self) -> Result<(String, AnyArguments<'q>)> {
        match self.error {
            Some(e) => Err(ServiceError::Internal(format!("a value could not be bound: {e}"))),
            None => Ok((self.text, self.args)),
        }
    }
}

pub struct Tuple<'s, 'q> {
    sql: &'s mut Sql<'q>,
    first: bool,
}

impl<'q> Tuple<'_, 'q> {
    pub fn bind<T: 'q + Encode<'q, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        if !std::mem::take(&mut self.first) {
            self.sql.text.push_str(", ");
        }
        self.sql.bind(value);
        self
    }
}

/// A yes/no column: an integer, 0 or 1, in both backends (so the SQL that compares it
/// reads the same in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        f.0
    }
}

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Any> for Flag {
    fn encode_by_ref(&self, buf: &mut <Any as sqlx::Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Any>>::encode(i64::from(self.0), buf)
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Flag(<i64 as Decode<'r, Any>>::decode(value)? != 0))
    }
}

/// A nullable number to bind. sqlx 0.8.6's `Any` driver sends a NULL `f64` to PostgreSQL
/// as a `real` (and a NULL `f32` as a `double precision`): a statement prepared with a
/// number then fails on a NULL. This binds NULL as the type the column has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Double(pub Option<f64>);

impl Type<Any> for Double {
    fn type_info() -> AnyTypeInfo {
        <f64 as Type<Any>>::type_info()
    }
}

impl<'q> Encode<'q, Any> for Double {
    fn encode_by_ref(&self, buf: &mut <Any as sqlx::Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
        match self.0 {
            Some(v) => <f64 as Encode<'q, Any>>::encode(v, buf),
            None => <Option<f32> as Encode<'q, Any>>::encode(None, buf),
        }
    }
}
