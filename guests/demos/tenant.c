/* A long-running tenant guest for the encryption-ID demo: it says it is up, then idles
 * (spinning: softkvm's emu has no idle time to give back) until the VMM is stopped. */
#include "sdk.h"

int main(void) {
    printf("confidential guest up\n");
    for (;;) __asm__ volatile("pause");
}
