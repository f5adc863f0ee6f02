import { describe, expect, it } from "vitest"
import * as SidecarPaths from "../../src/server/SidecarPaths.ts"

describe("SidecarPaths.make", () => {
  describe('prefix ""', () => {
    const paths = SidecarPaths.make("")

    it("names the three paths", () => {
      expect([paths.dashboard, paths.status, paths.attestation]).toEqual([
        "/dashboard",
        "/api/status",
        "/api/attestation",
      ])
    })

    it.each([
      "/dashboard",
      "/api/status",
      "/api/attestation",
      "/api/status?x=1",
      "/api/status?",
      "/dashboard?refresh=1&x=%2F",
      "/api/attestation?a=b?c",
      "/dashboard?#x",
    ])("owns %j", (rawUrl) => {
      expect(paths.owns(rawUrl)).toBe(true)
    })

    it.each([
      "/dashboard/",
      "//dashboard",
      "/%64ashboard",
      "/%2Fdashboard",
      "/Dashboard",
      "/DASHBOARD",
      "/dashboard.html",
      "/dashboardx",
      "/dashboard/x",
      "/dashboard;x",
      "/dashboard#x",
      "/dashboard%3Fx=1",
      "/api/status/",
      "/api//status",
      "//api/status",
      "/api/status%3Fx",
      "/api/Status",
      "/api/status/../status",
      "/api/./status",
      "/api/%73tatus",
      "/api/attestation/",
      "/api/attestation.json",
      "/api",
      "/api/",
      "/",
      "",
      "?",
      "*",
      "dashboard",
      "api/status",
      " /dashboard",
      "/dashboard ",
      "http://localhost/dashboard",
      "https://localhost:8443/api/status",
      "/.sidecar/dashboard",
    ])("does not own %j", (rawUrl) => {
      expect(paths.owns(rawUrl)).toBe(false)
    })
  })

  describe.each(["/.sidecar", "/coco/sidecar"])("prefix %j", (prefix) => {
    const paths = SidecarPaths.make(prefix)

    it("names the three paths under the prefix", () => {
      expect([paths.dashboard, paths.status, paths.attestation]).toEqual([
        `${prefix}/dashboard`,
        `${prefix}/api/status`,
        `${prefix}/api/attestation`,
      ])
    })

    it.each(["/dashboard", "/api/status", "/api/attestation", "/api/status?x=1", "/dashboard?"])(
      "owns the prefix + %j",
      (path) => {
        expect(paths.owns(`${prefix}${path}`)).toBe(true)
      },
    )

    it.each([
      "/dashboard",
      "/api/status",
      "/api/attestation",
      "/api/status?x=1",
      `${prefix}`,
      `${prefix}/`,
      `${prefix}/dashboard/`,
      `${prefix}//dashboard`,
      `/${prefix}/dashboard`,
      `${prefix}/api/status/`,
      `${prefix}/api/status%3Fx`,
      `${prefix}/dashboard#x`,
      `${prefix.toUpperCase()}/api/status`,
      `${prefix}x/api/status`,
      `${prefix}/api/status`.replace("/api", "/API"),
      "",
      "/",
    ])("does not own %j", (rawUrl) => {
      expect(paths.owns(rawUrl)).toBe(false)
    })
  })
})
