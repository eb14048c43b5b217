/* Interim: the config's header still lives in pipeline/ while edits to it land; it moves here
 * next (see CMakeLists.txt, tessera_api). */
#include "../pipeline/ts_config.h"
