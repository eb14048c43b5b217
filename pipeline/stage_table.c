/* stage_table.c — checks and look-ups over the registry (ts_stages[], pipeline/registry.c or a
 * test binary's own). */
#include <stdbool.h>
#include <string.h>

#include "ts_error.h"
#include "ts_stage.h"

int ts_stages_check(void) {
  for (int i = 0; ts_stages[i]; i++) {
    const struct ts_stage *s = ts_stages[i];
    bool sharded = s->kind == TS_SHARDED, coll = s->kind == TS_COLLECTIVE;
    if (s->abi != TS_STAGE_ABI || !s->name || !s->config_keys || !(sharded || coll) || (sharded && (!s->plan || !s->work)) ||
        (coll && !s->collective))
      return ts_error_set(TS_EINTERNAL, "STAGE_REGISTRY", "stage %d (%s) is incomplete or of another ABI", i, s->name ? s->name : "?");
    for (int j = 0; j < i; j++)
      if (!strcmp(ts_stages[j]->name, s->name))
        return ts_error_set(TS_EINTERNAL, "STAGE_REGISTRY", "stage name '%s' used twice", s->name);
    for (int k = 0; s->needs && s->needs[k]; k++) {
      bool found = false;
      for (int j = 0; j < i; j++) found |= !strcmp(ts_stages[j]->name, s->needs[k]);
      if (!found)
        return ts_error_set(TS_EINTERNAL, "STAGE_REGISTRY", "stage '%s' needs '%s', which does not run before it", s->name, s->needs[k]);
    }
  }
  return 0;
}

const struct ts_stage *ts_stage_find(const char *name) {
  for (int i = 0; ts_stages[i]; i++)
    if (!strcmp(ts_stages[i]->name, name)) return ts_stages[i];
  return NULL;
}
