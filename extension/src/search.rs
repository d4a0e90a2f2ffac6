//! `audit.search_plan(...)`: the SQL of one page of `audit.search` (extension/sql/search.sql),
//! as `audit_trail_contract::search` plans it from which filters are given. Only their
//! presence and the actors' distinct positions reach the plan, never a value: the SQL names
//! the search's arguments by position, and `audit.search` runs it with them.

use pgrx::pg_sys;
use pgrx::{FromDatum, IntoDatum};

use audit_trail_contract::search::{page_sql, Direction, Shape};

use crate::error::AuditError;
use crate::pg::args;
use crate::pg::ffi::sql_callable;

sql_callable!(audit_search_plan, pg_finfo_audit_search_plan => search_plan_entry);

unsafe fn search_plan_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (boolean, boolean, text[], boolean, boolean, boolean,
    // boolean, boolean, boolean, boolean, text, boolean).
    unsafe {
        let flag = |n: usize| {
            args::datum(fcinfo, n).is_some_and(|d| bool::from_datum(d, false) == Some(true))
        };
        let actors: Vec<Option<String>> = args::datum(fcinfo, 2)
            .and_then(|d| Vec::<Option<String>>::from_datum(d, false))
            .unwrap_or_default();
        let direction = match args::text(fcinfo, 10).as_deref() {
            None | Some("newest") => Direction::Newest,
            Some("before") => Direction::Before,
            Some("after") => Direction::After,
            Some(_) => AuditError::EmptyArgument {
                parameter: "direction",
            }
            .raise(),
        };
        let shape = Shape {
            since: flag(0),
            until: flag(1),
            actors: distinct_positions(&actors),
            entities: flag(3),
            actions: flag(4),
            except_actions: flag(5),
            sources: flag(6),
            subject: flag(7),
            table_name: flag(8),
            tenant: flag(9),
            direction: Some(direction),
            summarized: flag(11),
        };
        page_sql(&shape)
            .into_datum()
            .unwrap_or(pg_sys::Datum::from(0))
    }
}

/// The 1-based positions of the distinct names in `actors`.
fn distinct_positions(actors: &[Option<String>]) -> Vec<usize> {
    (0..actors.len())
        .filter(|&i| !actors[..i].contains(&actors[i]))
        .map(|i| i + 1)
        .collect()
}
