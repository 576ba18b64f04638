"""The errors the server returns, with the gRPC status and HTTP code TF Serving uses for each."""
import logging
import uuid

import grpc

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
}


class ServingError(Exception):
    """A request the server refuses; ``message`` is written for the person who sent it."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def too_large(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def overloaded(message: str) -> ServingError:
    """Load shed: the client may retry later (TF Serving answers a full queue the same way)."""
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def internal(log_message: str) -> ServingError:
    """Logs the exception being handled under a fresh id and returns an INTERNAL error that
    names only the id: exception text can describe the server's files and code."""
    error_id = uuid.uuid4().hex[:12]
    logging.exception("%s [error id %s]", log_message, error_id)
    return ServingError(grpc.StatusCode.INTERNAL,
                        f"internal error; the server log has the details under id {error_id}")
