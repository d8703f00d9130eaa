"""HTTP routes of the credit ledger (``/v1/credits/...``).

Reads are linearizable by default (served by the Raft leader after a read
barrier, forwarded there when this node is not it); ``?linearizable=false``
on a witness reads its own replica. Mutations need the bearer token; this
node signs them with its own key (a transfer always spends from this node).
Amounts are integer units (1 credit = 1 000 000 units). Refusals are JSON
``{"code", "detail"}``: 4xx for the caller's operation, 503 with
``code: "no_leader"`` when the ledger cannot answer now (retry with the same
``id``: it is idempotent). The routes are ``async``: they await the credits
service on the node's event loop. Nothing is decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from vudo.api.auth import AUTH_ERRORS, token_check
from vudo.api.models import (
    CreditAccountOut,
    CreditAccountsOut,
    CreditHistoryEntryOut,
    CreditHistoryOut,
    CreditProposalOut,
    CreditsErrorOut,
    CreditSummaryOut,
    GenesisIn,
    OperationOut,
    ProposalIn,
    TransferIn,
    TransferRecordOut,
    VoteIn,
    WitnessInitIn,
    WitnessInitOut,
)
from vudo.api.query import NodeQuery
from vudo.credits.client import LedgerRefused
from vudo.credits.wire import Committed, ReadReply, Refused, Response
from vudo.identity import public_key_from_node_id

#: HTTP status of each refusal code (anything else: 422).
STATUS_BY_CODE = {
    "no_leader": 503, "not_leader": 503, "unavailable": 503, "busy": 503, "raft": 503,
    "insufficient_funds": 409, "id_conflict": 409, "already_initialized": 409, "not_witness": 409,
    "invalid_signature": 400, "malformed": 400, "invalid_node_id": 400,
    "forbidden": 403, "not_found": 404,
    "overflow": 422, "memo_too_long": 422,
}
OP_ID = PathParam(min_length=1, max_length=64, description="the operation id")
NODE_ID = PathParam(min_length=1, max_length=128, description="the account's node id")
LINEARIZABLE = Query(True, description="read as of the leader's latest commit (false: this witness's replica)")


def refusal(code: str, detail: str, leader: str | None = None) -> JSONResponse:
    status = STATUS_BY_CODE.get(code, 422)
    if status == 503:
        code = "no_leader"  # one code for "the ledger cannot answer now, retry with the same id"
    return JSONResponse({"code": code, "detail": detail, "leader": leader}, status_code=status)


def _refused(response: Refused) -> JSONResponse:
    return refusal(response.code, response.message or response.code, response.leader)


def _operation(op_id: str, response: Response) -> JSONResponse:
    if isinstance(response, Refused):
        return _refused(response)
    if not isinstance(response, Committed):
        return refusal("malformed", "the ledger answered a write with a read reply")
    status = "exists" if response.outcome == "exists" else "committed"
    return JSONResponse({"id": op_id, "status": status, "index": response.index})


def _read(response: Response) -> ReadReply | JSONResponse:
    if isinstance(response, Refused):
        return _refused(response)
    if not isinstance(response, ReadReply):
        return refusal("malformed", "the ledger answered a read with a write outcome")
    return response


def _valid_node_id(node_id: str) -> bool:
    try:
        public_key_from_node_id(node_id)
    except ValueError:
        return False
    return True


def credits_router(node: NodeQuery, token_matches: Callable[[str], bool]) -> APIRouter:
    router = APIRouter()
    require_token = token_check(token_matches)

    auth = AUTH_ERRORS
    errors: dict[int | str, dict[str, Any]] = {code: {"model": CreditsErrorOut} for code in (400, 404, 409, 422, 503)}

    @router.get("/v1/credits/accounts", response_model=CreditAccountsOut, responses=errors)
    async def get_accounts(linearizable: bool = LINEARIZABLE) -> Any:
        """Every account: balance, locked, available, lifetime earned and spent; the total minted and the Bondieu pool."""
        reply = _read(await node.credits_read("accounts", linearizable=linearizable))
        if isinstance(reply, JSONResponse):
            return reply
        summary = reply.summary
        return {
            "accounts": [CreditAccountOut.model_validate(a, from_attributes=True).model_dump() for a in reply.accounts],
            "total_minted": summary.total_minted if summary else 0,
            "pool": summary.pool if summary else 0,
            "index": reply.index,
            "truncated": reply.truncated,
        }

    @router.get("/v1/credits/accounts/{node_id}", response_model=CreditAccountOut, responses=errors)
    async def get_account(node_id: str = NODE_ID, linearizable: bool = LINEARIZABLE) -> Any:
        """One account (all zero for a node that never held credits)."""
        if not _valid_node_id(node_id):
            return refusal("not_found", f"no account: {node_id!r} is not a node id")
        reply = _read(await node.credits_read("account", node_id, linearizable=linearizable))
        if isinstance(reply, JSONResponse):
            return reply
        if not reply.accounts:
            return refusal("not_found", "no such account")
        return CreditAccountOut.model_validate(reply.accounts[0], from_attributes=True).model_dump()

    @router.get("/v1/credits/accounts/{node_id}/history", response_model=CreditHistoryOut, responses=errors)
    async def get_history(node_id: str = NODE_ID, limit: int = Query(50, ge=1, le=1000, description="most entries, newest first")) -> Any:
        """The latest operations that moved (or tried to move) this account's credits, newest first."""
        if not _valid_node_id(node_id):
            return refusal("not_found", f"no account: {node_id!r} is not a node id")
        reply = _read(await node.credits_read("history", node_id, limit=limit))
        if isinstance(reply, JSONResponse):
            return reply
        return {"node_id": node_id, "index": reply.index,
                "entries": [CreditHistoryEntryOut.model_validate(e, from_attributes=True).model_dump() for e in reply.history]}

    @router.get("/v1/credits/summary", response_model=CreditSummaryOut, responses=errors)
    async def get_summary(linearizable: bool = LINEARIZABLE) -> Any:
        """Totals (minted = balances + pool, always), the leader and term, the applied index, witnesses, state hash."""
        reply = _read(await node.credits_read("summary", linearizable=linearizable))
        if isinstance(reply, JSONResponse):
            return reply
        if reply.summary is None:
            return refusal("malformed", "the ledger's answer carried no summary")
        s = reply.summary
        return {
            "total_minted": s.total_minted, "pool": s.pool, "sum_balances": s.sum_balances, "leader": s.leader,
            "term": s.term, "last_applied": s.last_applied, "witnesses": list(s.witnesses), "state_hash": s.state_hash,
            "voters": list(s.voters), "accounts": s.accounts, "open_locks": s.open_locks,
            "threshold_permille": s.threshold_permille, "index": reply.index, "state": s.state,
        }

    @router.post("/v1/credits/transfers", response_model=OperationOut, dependencies=[Depends(require_token)],
                 responses={**errors, **auth})
    async def post_transfer(body: TransferIn) -> JSONResponse:
        """Transfer `amount` units (plus `fee` to the pool) from this node to `to`, signed by this node. Retrying with the same `id` is safe."""
        if not _valid_node_id(body.to):
            return refusal("invalid_node_id", f"`to` ({body.to!r}) is not a node id")
        op_id, response = await node.credits_transfer(to=body.to, amount=body.amount, fee=body.fee, memo=body.memo, op_id=body.id)
        return _operation(op_id, response)

    @router.get("/v1/credits/transfers/{op_id}", response_model=TransferRecordOut, responses=errors)
    async def get_transfer(op_id: str = OP_ID) -> Any:
        """What became of an operation: applied (at `index`) or rejected (with its `code`)."""
        reply = _read(await node.credits_read("record", op_id))
        if isinstance(reply, JSONResponse):
            return reply
        if reply.record is None:
            return refusal("not_found", f"the ledger holds no operation {op_id!r}")
        r = reply.record
        return {"id": r.id, "status": r.status, "code": r.code, "message": r.message, "index": r.index}

    @router.post("/v1/credits/proposals", response_model=OperationOut, dependencies=[Depends(require_token)],
                 responses={**errors, **auth})
    async def post_proposal(body: ProposalIn) -> JSONResponse:
        """A witness proposes a quorum decision: mint `amount` to `target`, add or remove a witness."""
        if not _valid_node_id(body.target):
            return refusal("invalid_node_id", f"`target` ({body.target!r}) is not a node id")
        op_id, response = await node.credits_propose(action=body.action, target=body.target, amount=body.amount, op_id=body.id)
        return _operation(op_id, response)

    @router.get("/v1/credits/proposals/{op_id}", response_model=CreditProposalOut, responses=errors)
    async def get_proposal(op_id: str = OP_ID) -> Any:
        """A proposal's state and its votes so far."""
        reply = _read(await node.credits_read("proposal", op_id))
        if isinstance(reply, JSONResponse):
            return reply
        if reply.proposal is None:
            return refusal("not_found", f"no proposal {op_id!r}")
        p = reply.proposal
        return {"id": p.id, "proposer": p.proposer, "action": p.action, "target": p.target, "amount": p.amount,
                "state": p.state, "approvals": p.approvals, "rejections": p.rejections, "failure": p.failure}

    @router.post("/v1/credits/proposals/{op_id}/votes", response_model=OperationOut, dependencies=[Depends(require_token)],
                 responses={**errors, **auth})
    async def post_vote(body: VoteIn, op_id: str = OP_ID) -> JSONResponse:
        """This witness votes on a proposal (one vote per witness)."""
        response = await node.credits_vote(proposal_id=op_id, approve=body.approve)
        return _operation(op_id, response)

    @router.post("/v1/credits/witnesses/init", response_model=WitnessInitOut, dependencies=[Depends(require_token)],
                 responses={**errors, **auth})
    async def post_witness_init(body: WitnessInitIn) -> Any:
        """Found the witness cluster: call it on every founding witness with the same list (idempotent)."""
        bad = [w for w in body.witnesses if not _valid_node_id(w)]
        if bad:
            return refusal("invalid_node_id", f"not node ids: {', '.join(bad)}")
        try:
            voters = await node.credits_init(sorted(set(body.witnesses)))
        except LedgerRefused as err:
            return refusal(err.code, err.message)
        return {"witnesses": sorted(set(body.witnesses)), "voters": voters}

    @router.post("/v1/credits/genesis", response_model=OperationOut, dependencies=[Depends(require_token)],
                 responses={**errors, **auth})
    async def post_genesis(body: GenesisIn) -> JSONResponse:
        """The founding allocation, once per ledger (only a witness may submit it); the witnesses are the current voters."""
        bad = [n for n in body.allocations if not _valid_node_id(n)]
        if bad:
            return refusal("invalid_node_id", f"not node ids: {', '.join(bad)}")
        response = await node.credits_genesis(dict(body.allocations), threshold_permille=body.threshold_permille)
        return _operation("genesis", response)

    return router
