/* For tests under Wine only; never shipped.
 *
 * Rust's standard library (1.78+) takes its randomness from ProcessPrng in
 * bcryptprimitives.dll, which Windows 10+ has and Wine 8.0 lacks. This stand-in
 * answers from BCryptGenRandom, which Wine has. packaging/build-windows.sh builds it
 * and copies it into the Wine prefix used by the tests. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
