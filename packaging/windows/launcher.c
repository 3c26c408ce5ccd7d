/* flurfunk-app.exe: what the Start-menu shortcut starts.
 *
 * flurfunk.exe is a console program, so that `flurfunk send ...` prints to the console
 * it was started from. Started from a shortcut, a console program would open a console
 * window next to the app. This launcher (a GUI program, no console of its own) starts
 * `flurfunk.exe app ...` from its own folder without a console window and exits.
 * flurfunk.exe sets Flurfunk's AppUserModelID itself, so the taskbar and notifications
 * show Flurfunk, the same id as this shortcut's. */
#include <windows.h>
#include <wchar.h>

int WINAPI wWinMain(HINSTANCE instance, HINSTANCE previous, PWSTR args, int show)
{
    (void)instance;
    (void)previous;
    wchar_t exe[32768];
    DWORD n = GetModuleFileNameW(NULL, exe, 32768);
    if (n == 0 || n >= 32768 - 32)
        return 1;
    wchar_t *slash = wcsrchr(exe, L'\\');
    if (slash == NULL)
        return 1;
    wcscpy(slash + 1, L"flurfunk.exe");

    size_t len = wcslen(exe) + wcslen(args) + 16;
    wchar_t *line = HeapAlloc(GetProcessHeap(), 0, len * sizeof(wchar_t));
    if (line == NULL)
        return 1;
    swprintf(line, len, L"\"%ls\" app %ls", exe, args);

    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    /* A shortcut set to "minimized" or "maximized" starts the window that way. */
    si.dwFlags = STARTF_USESHOWWINDOW;
    si.wShowWindow = (WORD)show;
    ZeroMemory(&pi, sizeof pi);
    if (!CreateProcessW(exe, line, NULL, NULL, FALSE, CREATE_NO_WINDOW, NULL, NULL, &si, &pi)) {
        MessageBoxW(NULL, L"flurfunk.exe could not be started. Please reinstall Flurfunk.",
                    L"Flurfunk", MB_OK | MB_ICONERROR);
        return 1;
    }
    /* The app may bring its window (or, at a second start, the running one) forward. */
    AllowSetForegroundWindow(pi.dwProcessId);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    return 0;
}
