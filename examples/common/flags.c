/*
 * flags.c - the command line of every example program (see flags.h).
 */
#include "flags.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *program_name(const char *argv0)
{
    const char *slash = argv0 != NULL ? strrchr(argv0, '/') : NULL;
    return argv0 == NULL ? "example" : slash != NULL ? slash + 1 : argv0;
}

/* The first line of the usage: every option in brackets. */
static void print_synopsis(const app_cmdline *cmd, const char *argv0, FILE *f)
{
    int i;
    fprintf(f, "usage: %s [-h]", program_name(argv0));
    for (i = 0; i < cmd->nflags; i++) {
        const app_flag *o = &cmd->flags[i];
        if (o->kind == APP_FLAG_SWITCH)
            fprintf(f, " [%s]", o->name);
        else
            fprintf(f, " [%s %s]", o->name, o->metavar);
    }
    for (i = 0; i < cmd->npositionals; i++) fprintf(f, " [%s]", cmd->positionals[i].metavar);
    fprintf(f, "\n");
}

void app_print_usage(const app_cmdline *cmd, const char *argv0, FILE *f)
{
    int i;
    print_synopsis(cmd, argv0, f);
    fprintf(f, "\n%s\n\n", cmd->summary);
    fprintf(f, "  %-22s %s\n", "-h, --help", "show this help and exit");
    for (i = 0; i < cmd->nflags; i++) {
        const app_flag *o = &cmd->flags[i];
        char head[64];
        if (o->kind == APP_FLAG_SWITCH)
            snprintf(head, sizeof head, "%s", o->name);
        else
            snprintf(head, sizeof head, "%s %s", o->name, o->metavar);
        fprintf(f, "  %-22s %s", head, o->help);
        if (o->kind == APP_FLAG_INT)
            fprintf(f, " (%.0f to %.0f)", o->min, o->max);
        else if (o->kind == APP_FLAG_REAL)
            fprintf(f, " (%g to %g)", o->min, o->max);
        fprintf(f, "\n");
    }
    for (i = 0; i < cmd->npositionals; i++)
        fprintf(f, "  %-22s %s\n", cmd->positionals[i].metavar, cmd->positionals[i].help);
}

int app_usage_error(const app_cmdline *cmd, const char *argv0, const char *message)
{
    /* as argparse: the synopsis, then the reason */
    print_synopsis(cmd, argv0, stderr);
    fprintf(stderr, "%s: error: %s (--help lists the options)\n", program_name(argv0), message);
    return 2;
}

int app_parse_app_flags(const app_cmdline *cmd, int argc, char **argv, const int *quick,
                        const int *smoke)
{
    int rc = app_parse_flags(cmd, argc, argv);
    if (rc != APP_FLAGS_RUN) return rc;
    if (*quick && *smoke)
        return app_usage_error(cmd, argv[0], "--quick and --smoke exclude each other");
    return APP_FLAGS_RUN;
}

/* Store `text` as the value of `o`; returns 0, or 2 after the message. */
static int set_value(const app_cmdline *cmd, const char *argv0, const app_flag *o,
                     const char *text)
{
    char msg[512];
    char *end = NULL;
    if (o->kind == APP_FLAG_PATH) {
        if (text[0] == '\0' || text[0] == '-') {
            snprintf(msg, sizeof msg,
                     "%s: '%s' is not a path (one starting with '-' "
                     "is taken for a mistyped option; write ./%s)",
                     o->name, text, text);
            return app_usage_error(cmd, argv0, msg);
        }
        *(const char **)o->value = text;
        return 0;
    }
    errno = 0;
    if (o->kind == APP_FLAG_INT) {
        long long v = strtoll(text, &end, 10);
        if (end == text || *end != '\0' || errno == ERANGE) {
            snprintf(msg, sizeof msg, "%s: '%s' is not a whole number", o->name, text);
            return app_usage_error(cmd, argv0, msg);
        }
        if ((double)v < o->min || (double)v > o->max) {
            snprintf(msg, sizeof msg, "%s: %lld is outside %.0f to %.0f", o->name, v, o->min,
                     o->max);
            return app_usage_error(cmd, argv0, msg);
        }
        *(int64_t *)o->value = (int64_t)v;
        return 0;
    }
    {
        double v = strtod(text, &end);
        if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v)) {
            snprintf(msg, sizeof msg, "%s: '%s' is not a finite number", o->name, text);
            return app_usage_error(cmd, argv0, msg);
        }
        if (v < o->min || v > o->max) {
            snprintf(msg, sizeof msg, "%s: %g is outside %g to %g", o->name, v, o->min, o->max);
            return app_usage_error(cmd, argv0, msg);
        }
        *(double *)o->value = v;
        return 0;
    }
}

int app_parse_flags(const app_cmdline *cmd, int argc, char **argv)
{
    const char *argv0 = argc > 0 ? argv[0] : NULL;
    char msg[512];
    int i, npos = 0;
    /* --help anywhere wins over everything else on the line, as in argparse */
    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            app_print_usage(cmd, argv0, stdout);
            return 0;
        }
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const app_flag *o = NULL;
        int k;
        if (arg[0] != '-') {
            if (npos >= cmd->npositionals) {
                snprintf(msg, sizeof msg, "unexpected argument '%s'", arg);
                return app_usage_error(cmd, argv0, msg);
            }
            *cmd->positionals[npos++].value = arg;
            continue;
        }
        for (k = 0; k < cmd->nflags && o == NULL; k++)
            if (strlen(cmd->flags[k].name) == len && strncmp(cmd->flags[k].name, arg, len) == 0)
                o = &cmd->flags[k];
        if (o == NULL) {
            snprintf(msg, sizeof msg, "unknown option '%.*s'", (int)len, arg);
            return app_usage_error(cmd, argv0, msg);
        }
        if (o->kind == APP_FLAG_SWITCH) {
            if (eq != NULL) {
                snprintf(msg, sizeof msg, "option '%s' takes no value", o->name);
                return app_usage_error(cmd, argv0, msg);
            }
            *(int *)o->value = 1;
            continue;
        }
        if (eq == NULL && i + 1 >= argc) {
            snprintf(msg, sizeof msg, "option '%s' needs a value (%s)", o->name, o->metavar);
            return app_usage_error(cmd, argv0, msg);
        }
        if (set_value(cmd, argv0, o, eq != NULL ? eq + 1 : argv[++i]) != 0) return 2;
    }
    return APP_FLAGS_RUN;
}
