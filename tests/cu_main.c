/* cu_main.c — shared CUnit runner. Each test_<module>.c defines ts_test_register(), which adds
 * its suite; this main runs everything and returns the number of failures itself, since
 * CU_basic_run_tests() reports success even when assertions fail. */
#include <CUnit/Basic.h>
#include <stdio.h>

int ts_test_register(void);

int main(void) {
  if (CU_initialize_registry() != CUE_SUCCESS) return 2;
  if (ts_test_register() != 0) {
    fprintf(stderr, "suite registration failed: %s\n", CU_get_error_msg());
    CU_cleanup_registry();
    return 2;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
  unsigned run = CU_get_number_of_tests_run();
  CU_cleanup_registry();
  if (run == 0) {
    fprintf(stderr, "no test ran\n");
    return 2;
  }
  return failed ? 1 : 0;
}
