//! Turning a table row into jsonb, column by column, with the same result as `to_jsonb(row)`.
//!
//! The common column types (integers, numeric, text, booleans, timestamps, jsonb, uuid, ...)
//! are encoded directly; every other type goes through PostgreSQL's own `to_jsonb` so that
//! arrays, composites, domains and enums come out exactly as PostgreSQL renders them. The one
//! exception: a value whose type (or any type inside it) has a cast to json goes in as its
//! output text, since to_jsonb would call that cast, and a table owner can define one. Which path a column takes is decided once, when the table's settings
//! are loaded, not per row.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::pg_sys::jbvType;
use pgrx::pg_sys::JsonbIteratorToken::{
    WJB_BEGIN_ARRAY, WJB_BEGIN_OBJECT, WJB_ELEM, WJB_END_ARRAY, WJB_END_OBJECT, WJB_KEY, WJB_VALUE,
};

use crate::pg::{compat, datums};

use audit_trail_contract::REDACTED;

enum Encoding {
    Bool,
    Int2,
    Int4,
    Int8,
    Numeric,
    /// float4/float8: output text, then a JSON number unless it is NaN or infinite.
    Float,
    /// date, timestamp, timestamptz in to_jsonb's ISO 8601 form.
    DateTime(pg_sys::Oid),
    Text,
    Jsonb,
    /// Built-in types to_jsonb renders as their text output (uuid, inet, bytea, ...).
    Output,
    /// Everything else: a call of to_jsonb itself.
    ToJsonb(Box<pg_sys::FmgrInfo>),
}

/// How one column of a tracked table is encoded, with its role in the table's settings.
pub struct ColumnCodec {
    /// Position in the tuple descriptor.
    pub index: usize,
    pub name: CString,
    pub by_val: bool,
    pub len: i16,
    pub redacted: bool,
    pub ignored: bool,
    encoding: Encoding,
    /// The type's output function, for subject ids and the `Output` encoding.
    output: Box<pg_sys::FmgrInfo>,
}

impl ColumnCodec {
    /// # Safety
    /// `attr` must be a live attribute of a relation's descriptor; `context` must outlive the
    /// codec (function lookup data is allocated there).
    pub unsafe fn new(
        index: usize,
        attr: &pg_sys::FormData_pg_attribute,
        context: pg_sys::MemoryContext,
    ) -> Self {
        // SAFETY: guaranteed by the caller; the look-ups below read the type's catalog rows.
        unsafe {
            let base = pg_sys::getBaseType(attr.atttypid);
            let mut output_fn = pg_sys::InvalidOid;
            let mut is_varlena = false;
            pg_sys::getTypeOutputInfo(base, &mut output_fn, &mut is_varlena);
            let mut output = Box::new(pg_sys::FmgrInfo::default());
            pg_sys::fmgr_info_cxt(output_fn, output.as_mut(), context);

            let encoding = match base {
                pg_sys::BOOLOID => Encoding::Bool,
                pg_sys::INT2OID => Encoding::Int2,
                pg_sys::INT4OID => Encoding::Int4,
                pg_sys::INT8OID => Encoding::Int8,
                pg_sys::NUMERICOID => Encoding::Numeric,
                pg_sys::FLOAT4OID | pg_sys::FLOAT8OID => Encoding::Float,
                pg_sys::DATEOID | pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => {
                    Encoding::DateTime(base)
                }
                pg_sys::TEXTOID | pg_sys::VARCHAROID => Encoding::Text,
                pg_sys::JSONBOID => Encoding::Jsonb,
                pg_sys::UUIDOID
                | pg_sys::INETOID
                | pg_sys::CIDROID
                | pg_sys::MACADDROID
                | pg_sys::MACADDR8OID
                | pg_sys::BPCHAROID
                | pg_sys::CHAROID
                | pg_sys::NAMEOID
                | pg_sys::BYTEAOID
                | pg_sys::TIMEOID
                | pg_sys::TIMETZOID
                | pg_sys::INTERVALOID
                | pg_sys::OIDOID
                | pg_sys::MONEYOID
                | pg_sys::BITOID
                | pg_sys::VARBITOID => Encoding::Output,
                // to_jsonb would call a cast to json that the type's owner may have defined
                // (for any user-defined type it finds in the value): such a function could
                // record anything. The type's own output text cannot lie about the value.
                _ if may_use_json_cast(base, 0) => Encoding::Output,
                _ => Encoding::ToJsonb(to_jsonb_for(attr, context)),
            };
            ColumnCodec {
                index,
                name: CString::new(pgrx::name_data_to_str(&attr.attname)).unwrap_or_default(),
                by_val: attr.attbyval,
                len: attr.attlen,
                redacted: false,
                ignored: false,
                encoding,
                output,
            }
        }
    }

    /// The value as text for `subject_id`.
    ///
    /// # Safety
    /// `value` must be a non-null datum of this column's type.
    pub unsafe fn to_text(&self, value: pg_sys::Datum) -> pg_sys::Datum {
        // SAFETY: guaranteed by the caller.
        unsafe {
            match self.encoding {
                Encoding::Text => {
                    let text = pg_sys::pg_detoast_datum_packed(value.cast_mut_ptr());
                    datums::text(pgrx::varlena::varlena_to_byte_slice(text))
                }
                _ => {
                    let out = pg_sys::OutputFunctionCall(
                        std::ptr::from_ref(self.output.as_ref()).cast_mut(),
                        value,
                    );
                    datums::text(std::ffi::CStr::from_ptr(out).to_bytes())
                }
            }
        }
    }

    /// Pushes the value as the next object value or array element.
    ///
    /// # Safety
    /// `state` is a parse state being built; `value` a datum of this column's type unless null.
    unsafe fn push(
        &self,
        state: &mut *mut pg_sys::JsonbParseState,
        token: pg_sys::JsonbIteratorToken::Type,
        value: pg_sys::Datum,
        is_null: bool,
    ) {
        // SAFETY: each arm reads the datum as the type its encoding was chosen for.
        unsafe {
            if is_null {
                push_scalar(state, token, jsonb_null());
                return;
            }
            if self.redacted {
                push_scalar(state, token, jsonb_string(REDACTED.as_bytes()));
                return;
            }
            let scalar = match &self.encoding {
                Encoding::Bool => {
                    let mut v = jsonb_null();
                    v.type_ = jbvType::jbvBool;
                    v.val.boolean = value.value() != 0;
                    v
                }
                Encoding::Int2 => {
                    jsonb_numeric(pg_sys::int64_to_numeric(value.value() as i16 as i64))
                }
                Encoding::Int4 => {
                    jsonb_numeric(pg_sys::int64_to_numeric(value.value() as i32 as i64))
                }
                Encoding::Int8 => jsonb_numeric(pg_sys::int64_to_numeric(value.value() as i64)),
                Encoding::Numeric => {
                    let n = pg_sys::pg_detoast_datum(value.cast_mut_ptr()) as pg_sys::Numeric;
                    if pg_sys::numeric_is_nan(n) || pg_sys::numeric_is_inf(n) {
                        self.output_string(value)
                    } else {
                        jsonb_numeric(n)
                    }
                }
                Encoding::Float => {
                    let out = self.output_cstr(value);
                    let text = std::ffi::CStr::from_ptr(out).to_bytes();
                    if text.iter().any(|b| *b == b'n' || *b == b'N') {
                        jsonb_string(text)
                    } else {
                        let n = pgrx::direct_function_call_as_datum(
                            pg_sys::numeric_in,
                            &[
                                Some(pg_sys::Datum::from(out)),
                                Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                                Some(pg_sys::Datum::from(-1i32)),
                            ],
                        );
                        match n {
                            Some(n) => jsonb_numeric(n.cast_mut_ptr()),
                            None => jsonb_string(text),
                        }
                    }
                }
                Encoding::DateTime(type_oid) => {
                    let s = pg_sys::JsonEncodeDateTime(
                        std::ptr::null_mut(),
                        value,
                        *type_oid,
                        std::ptr::null(),
                    );
                    jsonb_string(std::ffi::CStr::from_ptr(s).to_bytes())
                }
                Encoding::Text => {
                    let text = pg_sys::pg_detoast_datum_packed(value.cast_mut_ptr());
                    jsonb_string(pgrx::varlena::varlena_to_byte_slice(text))
                }
                Encoding::Output => self.output_string(value),
                Encoding::Jsonb => {
                    let jsonb =
                        pg_sys::pg_detoast_datum(value.cast_mut_ptr()) as *mut pg_sys::Jsonb;
                    push_binary(state, token, jsonb);
                    return;
                }
                Encoding::ToJsonb(call) => {
                    let jsonb = pg_sys::FunctionCall1Coll(
                        std::ptr::from_ref(call.as_ref()).cast_mut(),
                        pg_sys::InvalidOid,
                        value,
                    );
                    push_binary(state, token, jsonb.cast_mut_ptr());
                    return;
                }
            };
            push_scalar(state, token, scalar);
        }
    }

    /// # Safety
    /// `value` must be a non-null datum of this column's type.
    unsafe fn output_cstr(&self, value: pg_sys::Datum) -> *mut core::ffi::c_char {
        // SAFETY: the output function of this column's base type applied to one of its values.
        unsafe {
            pg_sys::OutputFunctionCall(std::ptr::from_ref(self.output.as_ref()).cast_mut(), value)
        }
    }

    /// # Safety
    /// `value` must be a non-null datum of this column's type.
    unsafe fn output_string(&self, value: pg_sys::Datum) -> pg_sys::JsonbValue {
        // SAFETY: see output_cstr.
        unsafe { jsonb_string(std::ffi::CStr::from_ptr(self.output_cstr(value)).to_bytes()) }
    }
}

/// A call of `to_jsonb(anyelement)` bound to one column type. `to_jsonb` learns its argument's
/// type from the call expression, so the lookup data carries a one-argument expression of it.
/// Whether `to_jsonb` of a value of this type would call a cast function to json: as
/// PostgreSQL decides it (jsonb_categorize_type), for a user-defined type that is neither an
/// array nor composite, at any depth of arrays and composites. New casts invalidate the
/// settings cache (see table_config), so the answer is re-checked when one appears.
///
/// # Safety
/// Reads the type catalogs; `typoid` must be a valid type.
unsafe fn may_use_json_cast(typoid: pg_sys::Oid, depth: u32) -> bool {
    // Composite types cannot contain themselves; the limit only bounds pathological nesting,
    // and erring towards the output text is safe.
    if depth > 32 {
        return true;
    }
    // SAFETY: catalog look-ups of a valid type; the row type's descriptor is released after
    // use.
    unsafe {
        let typoid = pg_sys::getBaseType(typoid);
        let element = pg_sys::get_element_type(typoid);
        if element != pg_sys::InvalidOid {
            return may_use_json_cast(element, depth + 1);
        }
        if pg_sys::type_is_rowtype(typoid) {
            if typoid == pg_sys::RECORDOID {
                return true;
            }
            let desc = pg_sys::lookup_rowtype_tupdesc(typoid, -1);
            let found = compat::tuple_desc_attrs(desc)
                .iter()
                .any(|a| !a.attisdropped && may_use_json_cast(a.atttypid, depth + 1));
            pg_sys::DecrTupleDescRefCount(desc);
            return found;
        }
        if typoid.to_u32() < pg_sys::FirstNormalObjectId {
            return false;
        }
        let mut cast = pg_sys::InvalidOid;
        let path = pg_sys::find_coercion_pathway(
            pg_sys::JSONOID,
            typoid,
            pg_sys::CoercionContext::COERCION_EXPLICIT,
            &mut cast,
        );
        path == pg_sys::CoercionPathType::COERCION_PATH_FUNC && cast != pg_sys::InvalidOid
    }
}

/// A call of `to_jsonb` on the column's type, built once per column.
///
/// # Safety
/// `attr` must be a live attribute; `context` must outlive the returned FmgrInfo.
unsafe fn to_jsonb_for(
    attr: &pg_sys::FormData_pg_attribute,
    context: pg_sys::MemoryContext,
) -> Box<pg_sys::FmgrInfo> {
    // SAFETY: nodes are built in `context`, which outlives the FmgrInfo that points to them.
    unsafe {
        let mut call = Box::new(pg_sys::FmgrInfo::default());
        pg_sys::fmgr_info_cxt(
            pg_sys::Oid::from(pg_sys::F_TO_JSONB),
            call.as_mut(),
            context,
        );
        let previous = pg_sys::CurrentMemoryContext;
        pg_sys::CurrentMemoryContext = context;
        let arg = pg_sys::makeNullConst(attr.atttypid, attr.atttypmod, attr.attcollation);
        let expr = pg_sys::makeFuncExpr(
            pg_sys::Oid::from(pg_sys::F_TO_JSONB),
            pg_sys::JSONBOID,
            pg_sys::lappend(std::ptr::null_mut(), arg.cast()),
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
        );
        pg_sys::CurrentMemoryContext = previous;
        call.fn_expr = expr.cast();
        call
    }
}

fn jsonb_null() -> pg_sys::JsonbValue {
    pg_sys::JsonbValue {
        type_: jbvType::jbvNull,
        val: pg_sys::JsonbValue__bindgen_ty_1 { boolean: false },
    }
}

/// jsonb stores a string's length in 28 bits (JENTRY_OFFLENMASK); a longer one would
/// overflow into the entry's type bits and corrupt the value, so it is refused, as
/// PostgreSQL's own to_jsonb does.
const JSONB_MAX_STRING: usize = 0x0FFF_FFFF;

fn jsonb_string(bytes: &[u8]) -> pg_sys::JsonbValue {
    if bytes.len() > JSONB_MAX_STRING {
        crate::error::AuditError::ValueTooLarge.raise();
    }
    pg_sys::JsonbValue {
        type_: jbvType::jbvString,
        val: pg_sys::JsonbValue__bindgen_ty_1 {
            string: pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1 {
                len: bytes.len() as core::ffi::c_int,
                val: bytes.as_ptr().cast_mut().cast(),
            },
        },
    }
}

fn jsonb_numeric(numeric: pg_sys::Numeric) -> pg_sys::JsonbValue {
    pg_sys::JsonbValue {
        type_: jbvType::jbvNumeric,
        val: pg_sys::JsonbValue__bindgen_ty_1 { numeric },
    }
}

/// # Safety
/// `state` must be a jsonb parse state being built.
unsafe fn push_scalar(
    state: &mut *mut pg_sys::JsonbParseState,
    token: pg_sys::JsonbIteratorToken::Type,
    mut value: pg_sys::JsonbValue,
) {
    // SAFETY: pushJsonbValue copies what it needs from `value` into the parse state.
    unsafe { pg_sys::pushJsonbValue(state, token, &mut value) };
}

/// # Safety
/// `state` must be a jsonb parse state being built; `jsonb` a detoasted jsonb value.
unsafe fn push_binary(
    state: &mut *mut pg_sys::JsonbParseState,
    token: pg_sys::JsonbIteratorToken::Type,
    jsonb: *mut pg_sys::Jsonb,
) {
    // SAFETY: `jsonb` is a detoasted jsonb; pushJsonbValue walks the container token by token.
    unsafe {
        let mut value = pg_sys::JsonbValue {
            type_: jbvType::jbvBinary,
            val: pg_sys::JsonbValue__bindgen_ty_1 {
                binary: pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_4 {
                    len: pgrx::varlena::varsize_any(jsonb.cast()) as core::ffi::c_int,
                    data: &mut (*jsonb).root,
                },
            },
        };
        pg_sys::pushJsonbValue(state, token, &mut value);
    }
}

/// A jsonb object of the given columns' values.
///
/// # Safety
/// `values`/`nulls` are a deformed row of the descriptor the codecs were built from.
pub unsafe fn object<'a>(
    columns: impl Iterator<Item = &'a ColumnCodec>,
    values: &[pg_sys::Datum],
    nulls: &[bool],
) -> pg_sys::Datum {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
        pg_sys::pushJsonbValue(&mut state, WJB_BEGIN_OBJECT, std::ptr::null_mut());
        for column in columns {
            push_scalar(&mut state, WJB_KEY, jsonb_string(column.name.as_bytes()));
            column.push(
                &mut state,
                WJB_VALUE,
                values[column.index],
                nulls[column.index],
            );
        }
        let result = pg_sys::pushJsonbValue(&mut state, WJB_END_OBJECT, std::ptr::null_mut());
        pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(result))
    }
}

/// The subject id: the single column's text, or a JSON array text for a composite key
/// (`key` indexes `columns`, in key order). None when the (single) value is NULL.
///
/// # Safety
/// As [`object`].
pub unsafe fn subject(
    columns: &[ColumnCodec],
    key: &[usize],
    values: &[pg_sys::Datum],
    nulls: &[bool],
) -> Option<pg_sys::Datum> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if let [only] = key {
            let column = &columns[*only];
            return (!nulls[column.index]).then(|| column.to_text(values[column.index]));
        }
        let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
        pg_sys::pushJsonbValue(&mut state, WJB_BEGIN_ARRAY, std::ptr::null_mut());
        for column in key.iter().map(|&i| &columns[i]) {
            column.push(
                &mut state,
                WJB_ELEM,
                values[column.index],
                nulls[column.index],
            );
        }
        let result = pg_sys::pushJsonbValue(&mut state, WJB_END_ARRAY, std::ptr::null_mut());
        let jsonb = pg_sys::JsonbValueToJsonb(result);
        let text = pg_sys::JsonbToCString(
            std::ptr::null_mut(),
            &mut (*jsonb).root,
            pgrx::varlena::varsize_any(jsonb.cast()) as core::ffi::c_int,
        );
        Some(datums::text(std::ffi::CStr::from_ptr(text).to_bytes()))
    }
}
