// ViT family — stub, replaced by the family implementation.
extension ModelRegistry {
    static let vitEntries: [ModelEntry] = []
}
