//! How the `Arbitrary` derives of the wire types (feature `arbitrary`, for the fuzz
//! targets) fill their byte fields so every value respects the protocol and survives an
//! encode/parse round trip: a NUL-terminated argument never contains NUL, the final
//! argument (data, or the remainder of a non-data packet) may, and a WORK_FAIL handle never
//! ends in NUL (parsing strips it, as gearmand sends it after downgrading an exception).
//! GET_STATUS(_UNIQUE) values are terminated arguments here: parsing cuts them at a NUL,
//! as gearmand reads them.

use arbitrary::{Result, Unstructured};
use bytes::Bytes;

/// Any bytes: the opaque data argument, or the unterminated remainder of a non-data packet.
pub(super) fn data(u: &mut Unstructured<'_>) -> Result<Bytes> {
    Ok(Bytes::from(u.arbitrary::<Vec<u8>>()?))
}

/// A NUL-terminated argument: NULs are replaced so it stays one argument.
pub(super) fn arg(u: &mut Unstructured<'_>) -> Result<Bytes> {
    let mut v: Vec<u8> = u.arbitrary()?;
    v.iter_mut().filter(|b| **b == 0).for_each(|b| *b = b'0');
    Ok(Bytes::from(v))
}

/// Five terminated arguments (a schedule's fields).
pub(super) fn args5(u: &mut Unstructured<'_>) -> Result<[Bytes; 5]> {
    Ok([arg(u)?, arg(u)?, arg(u)?, arg(u)?, arg(u)?])
}

/// A WORK_FAIL handle: any bytes without trailing NULs.
pub(super) fn fail_handle(u: &mut Unstructured<'_>) -> Result<Bytes> {
    let mut v: Vec<u8> = u.arbitrary()?;
    while v.last() == Some(&0) {
        v.pop();
    }
    Ok(Bytes::from(v))
}
