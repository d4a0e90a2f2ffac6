//! `audit.ddl_changes_table(pg_ddl_command)`: whether a DDL command reported to the
//! `ddl_command_end` hook can change a table's rows or their shape, so that the hook records
//! it as an `alter` event.
//!
//! The test is a deny-list of what cannot: constraints, indexes, ownership, storage and
//! statistics settings, triggers (capture's own are guarded separately), row security.
//! Attaching or detaching a partition is recorded: it changes which rows the tracked table
//! holds without a row event. Everything else on a tracked table is recorded, so a subcommand this
//! list does not know errs towards a record. The commands a restore (pg_restore, psql of a
//! plain dump) runs on a table after loading its rows are all on the list: a restored log
//! gains no events.

use pgrx::pg_sys;
use pgrx::pg_sys::AlterTableType::*;
use pgrx::PgList;

use crate::pg::args;
use crate::pg::ffi::sql_callable;

/// ALTER TABLE subcommands that change neither rows nor the columns they are recorded by.
const KEEPS_ROWS: &[pg_sys::AlterTableType::Type] = &[
    AT_AddIndex,
    AT_ReAddIndex,
    AT_AddConstraint,
    AT_ReAddConstraint,
    AT_AlterConstraint,
    AT_ValidateConstraint,
    AT_AddIndexConstraint,
    AT_DropConstraint,
    AT_SetNotNull,
    AT_DropNotNull,
    AT_ColumnDefault,
    AT_ChangeOwner,
    AT_ClusterOn,
    AT_DropCluster,
    AT_ReplicaIdentity,
    AT_SetStatistics,
    AT_SetStorage,
    AT_SetOptions,
    AT_ResetOptions,
    AT_SetRelOptions,
    AT_ResetRelOptions,
    AT_ReplaceRelOptions,
    AT_SetTableSpace,
    AT_EnableTrig,
    AT_EnableAlwaysTrig,
    AT_EnableReplicaTrig,
    AT_DisableTrig,
    AT_EnableTrigAll,
    AT_DisableTrigAll,
    AT_EnableTrigUser,
    AT_DisableTrigUser,
    AT_EnableRowSecurity,
    AT_DisableRowSecurity,
    AT_ForceRowSecurity,
    AT_NoForceRowSecurity,
    AT_GenericOptions,
];

sql_callable!(audit_ddl_changes_table, pg_finfo_audit_ddl_changes_table => changes_table_entry);

unsafe fn changes_table_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (pg_ddl_command), whose datum is a pointer to the
    // CollectedCommand that pg_event_trigger_ddl_commands() reported, valid during the hook.
    let changes = unsafe {
        args::datum(fcinfo, 0)
            .map(|d| changes_table(&*d.cast_mut_ptr::<pg_sys::CollectedCommand>()))
            .unwrap_or(false)
    };
    pg_sys::Datum::from(changes)
}

/// # Safety
/// `command` must be a command collected for the current ddl_command_end hook.
unsafe fn changes_table(command: &pg_sys::CollectedCommand) -> bool {
    // SAFETY: the union member read is the one the command's type says is set; sub-command
    // parse trees of an ALTER TABLE are AlterTableCmd nodes.
    unsafe {
        match command.type_ {
            pg_sys::CollectedCommandType::SCT_AlterTable => {
                let subcommands =
                    PgList::<pg_sys::CollectedATSubcmd>::from_pg(command.d.alterTable.subcmds);
                let changes = subcommands.iter_ptr().any(|sub| {
                    let node = (*sub).parsetree;
                    node.is_null()
                        || (*node).type_ != pg_sys::NodeTag::T_AlterTableCmd
                        || !KEEPS_ROWS.contains(&(*node.cast::<pg_sys::AlterTableCmd>()).subtype)
                });
                changes
            }
            pg_sys::CollectedCommandType::SCT_Simple => {
                let node = command.parsetree;
                !node.is_null()
                    && matches!(
                        (*node).type_,
                        pg_sys::NodeTag::T_RenameStmt
                            | pg_sys::NodeTag::T_AlterObjectSchemaStmt
                            // ALTER TYPE ... RENAME VALUE (and ADD VALUE) of an enum.
                            | pg_sys::NodeTag::T_AlterEnumStmt
                    )
            }
            _ => false,
        }
    }
}

sql_callable!(audit_ddl_attached_partition, pg_finfo_audit_ddl_attached_partition => attached_partition_entry);

/// `audit.ddl_attached_partition(pg_ddl_command)`: the name (without schema) of the table an
/// ALTER TABLE attaches as a partition when that is all it does (what a restore runs on
/// `audit.events`), else NULL. A name, not an oid: ATTACH reports no address for the table,
/// and the statement's name would be resolved here against the hook's own search_path.
unsafe fn attached_partition_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: as changes_table_entry; the union member read is the one the type says is set,
    // and an AT_AttachPartition subcommand's definition is a PartitionCmd naming a RangeVar.
    let attached = unsafe {
        args::datum(fcinfo, 0).and_then(|d| {
            let command = &*d.cast_mut_ptr::<pg_sys::CollectedCommand>();
            if command.type_ != pg_sys::CollectedCommandType::SCT_AlterTable {
                return None;
            }
            let subcommands =
                PgList::<pg_sys::CollectedATSubcmd>::from_pg(command.d.alterTable.subcmds);
            if subcommands.len() != 1 {
                return None;
            }
            let node = (*subcommands.get_ptr(0)?).parsetree;
            if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_AlterTableCmd {
                return None;
            }
            let cmd = &*node.cast::<pg_sys::AlterTableCmd>();
            if cmd.subtype != AT_AttachPartition || cmd.def.is_null() {
                return None;
            }
            let name = (*cmd.def.cast::<pg_sys::PartitionCmd>()).name;
            if name.is_null() || (*name).relname.is_null() {
                return None;
            }
            Some(
                std::ffi::CStr::from_ptr((*name).relname)
                    .to_bytes()
                    .to_vec(),
            )
        })
    };
    match attached {
        Some(name) => crate::pg::datums::text(&name),
        None => {
            // SAFETY: fcinfo is the call's own; a NULL result is flagged there.
            unsafe { (*fcinfo).isnull = true };
            pg_sys::Datum::from(0)
        }
    }
}
