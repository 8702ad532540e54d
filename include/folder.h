/* folder.h - which folders an account syncs, and under which names.
 *
 * offlineimap configures this with Python expressions (folderfilter,
 * nametrans, folderincludes), which oimap evaluates with its own small
 * evaluator (pyeval.h; the subset is in oimap.conf(5), PYTHON EXPRESSIONS),
 * or, for what that evaluator does not take, with the python3 helper
 * (pyhelper.h) once config_load() has enabled it:
 *
 *   folderfilter   lambda f: f not in ['[Gmail]/All Mail', '[Gmail]/Spam']
 *                  lambda f: not re.search(r'(^Trash$|Del)', f)
 *   nametrans      lambda f: re.sub(r'^INBOX\.', '', f)
 *                  lambda f: {'[Gmail]/Sent Mail': 'sent'}.get(f, f)
 *   folderincludes ['Archive/2020', 'Lists/dev']
 *
 * An expression that neither takes is refused when the account starts, with
 * an error naming the file, line, option and construct (never a silent
 * "sync everything").  An error while evaluating (a TypeError, a regular
 * expression running out of steps) is logged and that folder is skipped.
 * Filters and translations keep evaluation scratch space: use each from one
 * thread at a time (the loop thread).
 */
#ifndef OIMAP_FOLDER_H
#define OIMAP_FOLDER_H

#include <stdbool.h>
#include <stddef.h>

struct config_expr;
struct folder_filter;
struct folder_trans;

/* Compile a folderfilter (NULL or unset text: accept every folder).
 * where is "FILE:LINE: [section] folderfilter" for the error message.
 * Returns 0 or OIMAP_ECONFIG (logged). */
int folder_filter_new(const struct config_expr *e, const char *where, struct folder_filter **f_r);
/* A filter accepting exactly the comma-separated names (for -f). */
int folder_filter_new_list(const char *csv, struct folder_filter **f_r);
bool folder_filter_match(const struct folder_filter *f, const char *name);
void folder_filter_free(struct folder_filter **f);

/* Compile a nametrans (unset: identity).  Returns 0 or OIMAP_ECONFIG. */
int folder_trans_new(const struct config_expr *e, const char *where, struct folder_trans **t_r);
/* Translate name; returns a malloc'd string, or NULL when out of memory or
 * when the expression fails or does not give a string (logged). */
char *folder_trans_apply(const struct folder_trans *t, const char *name);
bool folder_trans_is_identity(const struct folder_trans *t);
void folder_trans_free(struct folder_trans **t);

/* foldersort (offlineimap: a cmp function of two visible folder names, e.g.
 * lambda x, y: len(x) - len(y); its sign orders the folders).  NULL or unset
 * text: *s_r = NULL (the default order).  Returns 0 or OIMAP_ECONFIG. */
struct folder_sort;
int folder_sort_new(const struct config_expr *e, const char *where, struct folder_sort **s_r);
/* A stable order of names[0..n) by s into order[] (a permutation of 0..n-1).
 * When an evaluation fails or gives no number, the error is logged, order is
 * the identity and OIMAP_ECONFIG returned (the sync goes on in that order). */
int folder_sort_order(struct folder_sort *s, const char *const *names, size_t n, size_t *order);
void folder_sort_free(struct folder_sort **s);

/* Evaluate a Python expression giving a list or tuple of strings
 * ("['a', "b"]", "['a'] + ['b']").  Returns the number
 * of names (>= 0) with a malloc'd array in *names_r (free with
 * folder_names_free), or OIMAP_ECONFIG. */
int folder_parse_list(const char *text, char ***names_r);
/* The same, logging what is wrong with the expression after where
 * ("FILE:LINE: [section] folderincludes"). */
int folder_parse_list_at(const char *text, const char *where, char ***names_r);
void folder_names_free(char **names, size_t n);

#endif
