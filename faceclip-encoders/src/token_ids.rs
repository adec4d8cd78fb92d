//! The check every text encoder makes of the token ids it is given.

use burn::tensor::{backend::Backend, Int, Tensor};
use faceclip_core::InputError;

/// Checks that every id of `ids` is in `0..vocab_size`, reading the ids' least and largest
/// values back in one device read (each read waits for the device's queued work). `what`
/// names the ids in the error, which gives the first offending bound.
pub(crate) fn check_vocabulary<B: Backend>(
    ids: &Tensor<B, 2, Int>,
    vocab_size: usize,
    what: &str,
) -> Result<(), InputError> {
    let bounds: Vec<i64> = Tensor::cat(vec![ids.clone().min(), ids.clone().max()], 0)
        .into_data()
        .iter::<i64>()
        .collect();
    let limit = vocab_size as i64;
    match bounds[..] {
        [min, _] if min < 0 => Err(InputError::OutOfRange {
            what: what.into(),
            value: min,
            limit,
        }),
        [_, max] if max >= limit => Err(InputError::OutOfRange {
            what: what.into(),
            value: max,
            limit,
        }),
        _ => Ok(()),
    }
}
