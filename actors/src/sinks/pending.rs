//! Batches the writer has taken but not yet written, and the replies owed for them.
//!
//! Streams hand over one small batch per read chunk. Writing each one on its own costs a
//! wake-up and a sink call per chunk; instead the writer gathers every batch that is already
//! waiting in its mailbox and writes them together, then answers each stream. Nothing waits
//! for more traffic to arrive: a lone batch is written as soon as the mailbox is empty.

use std::cell::RefCell;
use std::rc::Rc;

use actix::dev::{MessageResponse, OneshotSender};
use actix::{Actor, Message};
use traptor_core::Record;

use crate::messages::WriteError;

/// What a stream is owed for one batch.
type Answer = Result<(), WriteError>;

/// Records taken from several batches, in arrival order, with one reply slot per batch.
#[derive(Default)]
struct Gathered {
    records: Vec<Record>,
    /// One entry per batch; `None` for a batch whose sender did not ask for a reply.
    replies: Vec<Option<OneshotSender<Answer>>>,
}

/// The writer's gathered batches. Shared (on the writer's thread only) between the writer
/// and the [`Reply`] values its handler returns, because actix hands the reply channel to the
/// returned value, not to the actor.
#[derive(Clone, Default)]
pub struct PendingBatches(Rc<RefCell<Gathered>>);

impl PendingBatches {
    /// Takes a batch's records; the reply slot follows through [`Reply::Later`].
    pub(crate) fn push(&self, records: Vec<Record>) -> Reply {
        let mut gathered = self.0.borrow_mut();
        if gathered.records.is_empty() {
            gathered.records = records;
        } else {
            gathered.records.extend(records);
        }
        Reply::Later(self.clone())
    }

    /// Whether nothing is waiting to be written.
    pub(crate) fn is_empty(&self) -> bool {
        let gathered = self.0.borrow();
        gathered.records.is_empty() && gathered.replies.is_empty()
    }

    /// Everything gathered so far, and the replies owed for it, leaving nothing behind.
    pub(crate) fn take(&self) -> (Vec<Record>, Replies) {
        let mut gathered = self.0.borrow_mut();
        let records = std::mem::take(&mut gathered.records);
        let replies = std::mem::take(&mut gathered.replies);
        (records, Replies(replies))
    }

    /// How many batches are gathered.
    #[cfg(test)]
    pub(crate) fn batches(&self) -> usize {
        self.0.borrow().replies.len()
    }
}

/// The replies owed for the batches of one write.
pub(crate) struct Replies(Vec<Option<OneshotSender<Answer>>>);

impl Replies {
    /// Answers every batch with the outcome of the write that carried it.
    pub fn send(self, answer: &Answer) {
        for reply in self.0.into_iter().flatten() {
            // A stream that stopped waiting (its actor died) no longer needs the answer.
            let _ = reply.send(answer.clone());
        }
    }
}

/// The writer's answer to a `WriteBatch`: given at once (refused, or nothing to write), or
/// once the batch has been written together with the others gathered meanwhile.
pub enum Reply {
    Now(Answer),
    Later(PendingBatches),
}

impl<A, M> MessageResponse<A, M> for Reply
where
    A: Actor,
    M: Message<Result = Answer>,
{
    fn handle(self, _: &mut A::Context, tx: Option<OneshotSender<Answer>>) {
        match self {
            Reply::Now(answer) => {
                if let Some(tx) = tx {
                    let _ = tx.send(answer);
                }
            }
            Reply::Later(pending) => pending.0.borrow_mut().replies.push(tx),
        }
    }
}

#[cfg(test)]
mod tests {
    use traptor_core::MessageKind;

    use super::*;

    fn record(id: u64) -> Record {
        Record {
            kind: MessageKind::Tweet,
            key: Some(id.to_string()),
            payload: Vec::new(),
            slot: None,
            received_at_ms: 0,
        }
    }

    struct Nobody;
    impl Actor for Nobody {
        type Context = actix::Context<Self>;
    }
    #[derive(Message)]
    #[rtype(result = "Result<(), WriteError>")]
    struct Batch;

    fn keys(records: &[Record]) -> Vec<u64> {
        records
            .iter()
            .map(|r| r.key.as_ref().unwrap().parse().unwrap())
            .collect()
    }

    #[actix::test]
    async fn batches_are_gathered_in_order_and_every_sender_is_answered() {
        let pending = PendingBatches::default();
        let mut receivers = Vec::new();
        let mut ctx = actix::Context::<Nobody>::new();
        for batch in [vec![record(1), record(2)], vec![record(3)], vec![record(4)]] {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let reply = pending.push(batch);
            MessageResponse::<Nobody, Batch>::handle(reply, &mut ctx, Some(tx));
            receivers.push(rx);
        }
        // A batch whose sender wants no answer still has its records written.
        MessageResponse::<Nobody, Batch>::handle(pending.push(vec![record(5)]), &mut ctx, None);
        assert_eq!(pending.batches(), 4);

        let (records, replies) = pending.take();
        assert_eq!(keys(&records), [1, 2, 3, 4, 5]);
        assert!(pending.is_empty());
        replies.send(&Err(WriteError::ShuttingDown));
        for rx in receivers {
            assert!(matches!(rx.await.unwrap(), Err(WriteError::ShuttingDown)));
        }
    }
}
