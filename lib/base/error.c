/*
 * error.c - status strings, the context's last error message, logging.
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "mgrad_config.h"

const char *mgrad_status_string(mgrad_status status)
{
    switch (status) {
    case MGRAD_OK: return "ok";
    case MGRAD_ERR_NULL: return "a required pointer argument was NULL";
    case MGRAD_ERR_INVALID: return "an argument value is out of range";
    case MGRAD_ERR_SIZE: return "a count or buffer size does not match";
    case MGRAD_ERR_SHAPE: return "tensor shapes do not chain";
    case MGRAD_ERR_ORDER: return "call made in the wrong order";
    case MGRAD_ERR_NONFINITE: return "NaN or Inf appeared";
    case MGRAD_ERR_NOMEM: return "out of memory";
    case MGRAD_ERR_DTYPE: return "unknown or unsupported dtype";
    case MGRAD_ERR_BUDGET: return "memory budget too small";
    case MGRAD_ERR_IO: return "file input/output failed";
    case MGRAD_ERR_CALLBACK: return "a callback reported failure";
    case MGRAD_ERR_CANCELLED: return "cancelled by a callback";
    case MGRAD_ERR_UNSUPPORTED: return "not supported by this build";
    case MGRAD_ERR_FORMAT: return "malformed file or buffer";
    case MGRAD_ERR_VERSION: return "unknown options struct version";
    case MGRAD_ERR_INTERNAL: return "internal error (a bug in libmetagrad)";
    }
    return "unknown status";
}

const char *mgrad_version_string(void) { return MGRAD_VERSION_STRING; }

int32_t mgrad_version_number(void) { return MGRAD_VERSION_NUMBER; }

mgrad_status mgr_error(mgrad_context *ctx, mgrad_status status, const char *fmt, ...)
{
    if (ctx != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
        va_end(ap);
        mgr_log(ctx, MGRAD_LOG_ERROR, "%s", ctx->last_error);
    }
    return status;
}

void mgr_log(mgrad_context *ctx, mgrad_log_level level, const char *fmt, ...)
{
    if (ctx == NULL || ctx->log_fn == NULL || level < ctx->log_level) return;
    char buf[MGRAD_ERROR_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->log_fn(level, buf, ctx->log_user_data);
}

const char *mgrad_context_last_error(const mgrad_context *ctx)
{
    return ctx != NULL ? ctx->last_error : "";
}

void mgrad_context_clear_error(mgrad_context *ctx)
{
    if (ctx != NULL) ctx->last_error[0] = '\0';
}
