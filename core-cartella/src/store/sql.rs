//! A small builder for SQL whose text is assembled from static fragments (table and column
//! names the code owns) and whose values are always bound as `$n` parameters, a placeholder
//! syntax both SQLite and PostgreSQL accept.
use std::collections::HashMap;

use sqlx::{Any, AssertSqlSafe, Executor, any::AnyRow};

use crate::record::Val;

#[derive(Debug, Default)]
pub struct Q {
    sql: String,
    args: Vec<Val>,
    /// Text values bound with [`Q::bind_shared`], and their placeholder numbers.
    shared: HashMap<Option<String>, usize>,
}

impl Q {
    pub fn new(sql: &str) -> Self {
        Self { sql: sql.to_string(), ..Self::default() }
    }

    /// Appends static SQL text. Never pass a caller-supplied string here.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub fn bind(&mut self, v: Val) -> &mut Self {
        self.args.push(v);
        let n = self.args.len();
        self.sql.push('$');
        self.sql.push_str(&n.to_string());
        self
    }

    /// Appends a placeholder for a text value (or NULL) that is bound once however many
    /// times it is used: multi-row INSERTs repeat the same values on many rows, and SQLite
    /// looks a numbered parameter's name up in a list when binding, so binding costs grow
    /// with the square of the parameter count.
    pub fn bind_shared(&mut self, s: Option<&str>) -> &mut Self {
        let key = s.map(str::to_string);
        match self.shared.get(&key) {
            Some(n) => {
                self.sql.push('$');
                self.sql.push_str(&n.to_string());
            }
            None => {
                self.bind(Val::Text(key.clone()));
                self.shared.insert(key, self.args.len());
            }
        }
        self
    }

    pub fn bind_text(&mut self, s: &str) -> &mut Self {
        self.bind(Val::text(s))
    }

    pub fn bind_int(&mut self, i: i64) -> &mut Self {
        self.bind(Val::Int(Some(i)))
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    fn build(&mut self) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
        // The text holds only static fragments and `$n` placeholders (see `push`).
        let Q { sql, args, .. } = std::mem::take(self);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for v in args {
            q = match v {
                Val::Text(s) => q.bind(s),
                Val::Int(i) => q.bind(i),
                Val::Bytes(b) => q.bind(b),
            };
        }
        q
    }

    pub async fn execute<'c, E: Executor<'c, Database = Any>>(&mut self, e: E) -> Result<u64, sqlx::Error> {
        Ok(self.build().execute(e).await?.rows_affected())
    }

    pub async fn fetch_all<'c, E: Executor<'c, Database = Any>>(&mut self, e: E) -> Result<Vec<AnyRow>, sqlx::Error> {
        self.build().fetch_all(e).await
    }

    pub async fn fetch_optional<'c, E: Executor<'c, Database = Any>>(&mut self, e: E) -> Result<Option<AnyRow>, sqlx::Error> {
        self.build().fetch_optional(e).await
    }
}
